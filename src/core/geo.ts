/** Great-circle distances for the geo-velocity rule and the traffic generator's incidents. */

const EARTH_RADIUS_KM = 6371.0088;
const RAD = Math.PI / 180;

export function haversineKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const dLat = (lat2 - lat1) * RAD;
  const dLon = (lon2 - lon1) * RAD;
  const s1 = Math.sin(dLat / 2);
  const s2 = Math.sin(dLon / 2);
  const a = s1 * s1 + Math.cos(lat1 * RAD) * Math.cos(lat2 * RAD) * s2 * s2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(a)));
}

/**
 * Cheap upper bound on the great-circle distance: a meridian leg plus a parallel leg is a
 * path between the points, so no shorter than the geodesic. Lets the common case (same
 * city) skip the trigonometry.
 */
export function distanceUpperBoundKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  let dLon = Math.abs(lon2 - lon1);
  if (dLon > 180) dLon = 360 - dLon;
  return EARTH_RADIUS_KM * RAD * (Math.abs(lat2 - lat1) + dLon);
}
