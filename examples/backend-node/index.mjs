// A Node backend on the official @trigger.dev/sdk, unchanged: triggers hello-world on taskhost,
// polls the run until it is complete and prints its output. The SDK reads TRIGGER_API_URL and
// TRIGGER_SECRET_KEY; nothing else is specific to taskhost.
//
//   TRIGGER_API_URL=http://127.0.0.1:8080 TRIGGER_SECRET_KEY=$(cat .taskhost/dev.key) node index.mjs "Hello from Node"
import { tasks, runs } from "@trigger.dev/sdk";

const message = process.argv[2] ?? "Hello world!";
try {
  const handle = await tasks.trigger("hello-world", { message });
  console.log(`triggered ${handle.id}`);
  const run = await runs.poll(handle, { pollIntervalMs: 100 });  // runs.retrieve until isCompleted
  console.log(`${run.status} ${JSON.stringify(run.output)}`);
  process.exit(run.isSuccess ? 0 : 1);
} catch (e) {
  console.error(`backend: ${e.status ? `${e.status} ` : ""}${e.message}`);  // an ApiError: "401 Invalid API key"
  process.exit(2);
}
