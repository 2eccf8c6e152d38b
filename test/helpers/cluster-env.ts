/**
 * The addresses of the failover tests' own 3-broker cluster. A test file on that cluster
 * imports this module FIRST: it points test/helpers/services.ts (read once, when first
 * imported) at the cluster, so every helper (processes, verify, topics) talks to it.
 */
export const CLUSTER_NODES = 3;
export const CLUSTER_PORT = 19092;
export const CLUSTER_CONTROLLER_PORT = 19093;

/** Node i (its KRaft node.id) listens on CLUSTER_PORT + 2(i-1), as scripts/services.sh lays it out. */
export const clusterBrokers: string[] = Array.from(
  { length: CLUSTER_NODES },
  (_, i) => `127.0.0.1:${CLUSTER_PORT + 2 * i}`,
);

process.env.PAYSTREAM_TEST_KAFKA = clusterBrokers.join(",");
