/**
 * Addresses of the real local services started by scripts/services.sh. Integration tests
 * fail (never skip) when a service is down: a skipped integration test proves nothing.
 */
export const services = {
  kafka: (process.env.PAYSTREAM_TEST_KAFKA ?? "127.0.0.1:9092").split(","),
  redis: process.env.PAYSTREAM_TEST_REDIS ?? "redis://127.0.0.1:6379",
  postgres: process.env.PAYSTREAM_TEST_POSTGRES ?? "postgres://paystream@127.0.0.1:5432/paystream",
};

/** A name unique to this test run, so reruns never read a previous run's data. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
