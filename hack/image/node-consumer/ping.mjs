// Talks to the database the way an application does: Redis.fromEnv() reads
// UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN (the operator's Secret,
// through envFrom), then prints the answer to PING.
import { Redis } from "@upstash/redis";

try {
  console.log(await Redis.fromEnv().ping());
} catch (err) {
  console.error(`ping failed: ${err.message}`);
  process.exit(1);
}
