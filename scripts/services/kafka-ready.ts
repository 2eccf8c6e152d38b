// Health probe used by scripts/services.sh: exits 0 only when a metadata request to the
// broker succeeds (a TCP accept alone does not mean the broker can serve requests) and, when
// a count is given, the cluster lists at least that many brokers (a node answers before the
// others have registered, and a topic at replication factor 3 needs all three).
import { Admin } from "@platformatic/kafka";

const broker = process.argv[2] ?? "127.0.0.1:9092";
const expected = Number(process.argv[3] ?? 1);
const admin = new Admin({
  clientId: "paystream-ready",
  bootstrapBrokers: [broker],
  timeout: 3000,
  retries: 0,
});
try {
  const meta = await admin.metadata({ topics: [] });
  await admin.close();
  if (meta.brokers.size < expected) {
    process.stderr.write(`kafka at ${broker}: ${meta.brokers.size} of ${expected} brokers registered\n`);
    process.exit(1);
  }
  process.stdout.write(`kafka ready: ${meta.brokers.size} broker(s), cluster ${meta.id}\n`);
  process.exit(0);
} catch (err) {
  process.stderr.write(`kafka not ready at ${broker}: ${(err as Error).message}\n`);
  await admin.close().catch(() => {});
  process.exit(1);
}
