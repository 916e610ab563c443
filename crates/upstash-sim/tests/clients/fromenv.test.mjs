// @upstash/redis configured the way applications are: Redis.fromEnv() reads
// UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN, here the rest_url and
// token upstash-sim reported, over HTTPS with the test CA given to Node in
// NODE_EXTRA_CA_CERTS. Started by tests/upstash_clients.rs; with
// EXPECT_UNTRUSTED=1 it runs without the CA and expects a refusal.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "@upstash/redis";

if (process.env.EXPECT_UNTRUSTED === "1") {
  test("without the CA the simulator's certificate is refused", async () => {
    const redis = Redis.fromEnv({ retry: false, enableAutoPipelining: false });
    await assert.rejects(redis.ping(), (err) => {
      const text = `${err.message} ${err.cause?.code ?? ""} ${err.cause?.message ?? ""}`;
      assert.match(text, /certificate|CERT/i);
      return true;
    });
  });
} else {
  test("Redis.fromEnv() gets PONG from the advertised HTTPS URL", async () => {
    assert.match(process.env.UPSTASH_REDIS_REST_URL, /^https:\/\//);
    const redis = Redis.fromEnv({ enableAutoPipelining: false });
    assert.equal(await redis.ping(), "PONG");
    assert.equal(await redis.set("over-tls", "yes"), "OK");
    assert.equal(await redis.get("over-tls"), "yes");
  });
}
