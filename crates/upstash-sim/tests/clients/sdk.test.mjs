// @upstash/redis, unmodified, against upstash-sim's REST data plane backed by
// a real redis-server. Started by tests/upstash_clients.rs with:
// UPSTASH_SIM_URL, REST_TOKEN (current), OLD_REST_TOKEN (revoked by a reset).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "@upstash/redis";

const url = process.env.UPSTASH_SIM_URL;
const token = process.env.REST_TOKEN;
const oldToken = process.env.OLD_REST_TOKEN;

test("commands run on the real redis-server (auto-pipelined, base64 results)", async () => {
  const redis = new Redis({ url, token });
  assert.equal(await redis.set("greeting", "hello from the sdk"), "OK");
  assert.equal(await redis.get("greeting"), "hello from the sdk");
  assert.equal(await redis.incr("counter"), 1);
  assert.equal(await redis.incrby("counter", 41), 42);
  await redis.set("object", { nested: [1, 2, 3] });
  assert.deepEqual(await redis.get("object"), { nested: [1, 2, 3] });
  await redis.hset("hash", { a: "1", b: "two" });
  assert.deepEqual(await redis.hgetall("hash"), { a: 1, b: "two" });
  assert.equal(await redis.get("missing"), null);
  assert.equal(await redis.ping(), "PONG");
});

test("explicit pipelines and transactions", async () => {
  const redis = new Redis({ url, token, enableAutoPipelining: false });
  const results = await redis.pipeline().set("p", "1").incr("p").get("p").exec();
  assert.deepEqual(results, ["OK", 2, 2]);
  const atomic = await redis.multi().set("m", "x").get("m").exec();
  assert.deepEqual(atomic, ["OK", "x"]);
});

test("plain (non-base64) responses decode too", async () => {
  const redis = new Redis({ url, token, responseEncoding: false, enableAutoPipelining: false });
  assert.equal(await redis.get("greeting"), "hello from the sdk");
});

test("the token revoked by a reset is refused", async () => {
  const stale = new Redis({ url, token: oldToken, enableAutoPipelining: false, retry: false });
  await assert.rejects(stale.get("greeting"), (err) => {
    assert.match(String(err.message), /WRONGPASS/);
    return true;
  });
});
