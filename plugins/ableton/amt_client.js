// amt_client.js: HTTP for the amt Max for Live device, run by [node.script amt_client.js @autostart 1]
// (Node for Max, Max 8.2+; fetch needs its bundled Node 18+, i.e. Max 8.6 / Max 9).
//
// "post URL": POSTs the dictionary "amt_request" as JSON, stores the answer in "amt_response" and outputs
// "response"; on failure outputs "failed MESSAGE" with the server's explanation.

const maxAPI = require("max-api");

async function post(url) {
  let answer;
  try {
    const body = JSON.stringify(await maxAPI.getDict("amt_request"));
    answer = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body });
  } catch (err) {
    await maxAPI.outlet("failed", `cannot reach the amt server at ${url}: is \`amt serve\` running? (${err.message})`);
    return;
  }
  const text = await answer.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    await maxAPI.outlet("failed", `the server answered ${answer.status} with something that is not JSON`);
    return;
  }
  if (!answer.ok) {
    await maxAPI.outlet("failed", `server answered ${answer.status}: ${parsed.error || text}`);
    return;
  }
  await maxAPI.setDict("amt_response", parsed);
  await maxAPI.outlet("response");
}

maxAPI.addHandler("post", post);
