// Loaded with `node --import` in front of Upstash's CLI: its API base URL is
// fixed to Upstash's, so requests are redirected to the simulator here.
// Anything that is not loopback is refused, so a test can never reach Upstash.
const target = process.env.UPSTASH_SIM_URL;
if (!target || !target.startsWith("http://127.0.0.1:")) {
  throw new Error("UPSTASH_SIM_URL must point at upstash-sim on 127.0.0.1");
}
const upstream = "https://api.upstash.com";
const realFetch = globalThis.fetch;
globalThis.fetch = (input, init) => {
  const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
  if (url.startsWith(upstream)) {
    return realFetch(target + url.slice(upstream.length), init);
  }
  if (url.startsWith("http://127.0.0.1:")) {
    return realFetch(input, init);
  }
  return Promise.reject(new Error(`refusing a request outside loopback: ${url}`));
};
