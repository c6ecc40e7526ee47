// YokeFlow Intervention for OpenCode: written by `yokeflow-intervention agents connect PROJECT
// opencode` (from agent/yokeflow_agent/opencode_plugin.js); connecting again replaces it.
//
// OpenCode runs this plugin in its own process. For each hook below it runs the product's hook
// adapter (COMMAND: `yokeflow-hook --client opencode`, plain Python) with the hook as JSON on
// stdin, and applies its answer: `block` refuses the call (thrown in tool.execute.before),
// `halt` aborts the session, `context` puts text where the model reads it (the resume brief in
// the session's system prompt, a warning after the tool's output), `notice` says in OpenCode's
// log why nothing was recorded. It fails open: an adapter that cannot start, fails, answers
// nothing readable or runs over TIMEOUT_MS lets the agent work on. No import but Node's own, so
// it needs no package installed beside it.
import { spawn } from "node:child_process";

const COMMAND = "yokeflow-hook --client opencode";
const TIMEOUT_MS = 10000;
const OUTPUT_LIMIT = 16000;

function run(payload) {
  return new Promise((resolve) => {
    let out = "";
    let child;
    const finish = (answer) => {
      clearTimeout(timer);
      resolve(answer && typeof answer === "object" ? answer : {});
    };
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {}
      finish({});
    }, TIMEOUT_MS);
    try {
      child = spawn("/bin/sh", ["-c", COMMAND], { stdio: ["pipe", "pipe", "ignore"] });
      child.on("error", () => finish({}));
      child.stdout.on("data", (chunk) => {
        out += chunk;
      });
      child.on("close", () => {
        try {
          finish(JSON.parse(out || "{}"));
        } catch {
          finish({});
        }
      });
      child.stdin.on("error", () => {});
      child.stdin.end(JSON.stringify(payload));
    } catch {
      finish({});
    }
  });
}

const text = (value) => (typeof value === "string" && value ? value : "");

export const YokeFlowIntervention = async ({ client, directory }) => {
  const started = new Map(); // session -> its start (a promise)
  const context = new Map(); // session -> the resume brief, for its system prompt
  const later = new Map(); // call -> a warning said at the call, for its output
  const refused = new Set(); // calls refused here: their error is ours, not the tool's
  const reported = new Set(); // calls whose result went out
  const roles = new Map(); // message -> its role
  const said = new Map(); // session -> the text of its last assistant part
  const busy = new Set(); // sessions that ran since they were last idle
  const ended = new Set();

  const log = (message) =>
    Promise.resolve()
      .then(() => client.app.log({ body: { service: "yokeflow-intervention", level: "warn", message } }))
      .catch(() => {});

  const hook = async (name, sessionID, fields = {}) => {
    const answer = await run({ hook: name, sessionID, directory, ...fields });
    if (text(answer.notice)) log(answer.notice);
    if (answer.halt) {
      await Promise.resolve()
        .then(() => client.session.abort({ path: { id: sessionID } }))
        .catch(() => {});
    }
    return answer;
  };

  const start = (sessionID) => {
    if (!sessionID) return Promise.resolve();
    if (!started.has(sessionID)) {
      const starting = hook("session.start", sessionID)
        .then((answer) => {
          if (text(answer.context)) context.set(sessionID, answer.context);
        })
        .catch(() => {});
      started.set(sessionID, starting);
    }
    return started.get(sessionID);
  };

  const toolFailed = async (part) => {
    if (refused.has(part.callID) || reported.has(part.callID)) return;
    reported.add(part.callID);
    await start(part.sessionID);
    const input = { tool: part.tool, sessionID: part.sessionID, callID: part.callID, args: part.state.input };
    await hook("tool.error", part.sessionID, { input, error: String(part.state.error || "") });
  };

  return {
    event: async ({ event }) => {
      try {
        const properties = event.properties || {};
        const sessionID = properties.sessionID || (properties.info && properties.info.id);
        switch (event.type) {
          case "session.created":
            await start(sessionID);
            break;
          case "session.status":
            if (properties.status && properties.status.type === "busy") busy.add(sessionID);
            break;
          case "message.updated":
            if (properties.info) roles.set(properties.info.id, properties.info.role);
            break;
          case "message.part.updated": {
            const part = properties.part || {};
            if (part.type === "text" && roles.get(part.messageID) === "assistant") {
              said.set(part.sessionID, part.text || "");
            }
            if (part.type === "tool" && part.state && part.state.status === "error") await toolFailed(part);
            break;
          }
          case "session.idle":
            if (started.has(sessionID) && busy.delete(sessionID)) {
              const reply = said.get(sessionID) || "";
              said.delete(sessionID);
              await hook("session.idle", sessionID, { text: reply });
            }
            break;
          case "session.deleted":
            if (started.has(sessionID) && !ended.has(sessionID)) {
              ended.add(sessionID);
              await hook("session.deleted", sessionID);
            }
            break;
          case "permission.asked":
          case "question.asked":
            await start(sessionID);
            await hook(event.type, sessionID, { properties });
            break;
        }
      } catch {}
    },

    "tool.execute.before": async (input, output) => {
      let answer = {};
      try {
        await start(input.sessionID);
        answer = await hook("tool.execute.before", input.sessionID, { input, output: { args: output.args } });
        if (text(answer.context)) later.set(input.callID, answer.context);
      } catch {
        answer = {};
      }
      if (text(answer.block)) {
        refused.add(input.callID);
        throw new Error(answer.block);
      }
    },

    "tool.execute.after": async (input, output) => {
      try {
        reported.add(input.callID);
        const result = {
          output: String(output.output ?? "").slice(0, OUTPUT_LIMIT),
          metadata: { exit: output.metadata ? output.metadata.exit : undefined },
        };
        const answer = await hook("tool.execute.after", input.sessionID, { input, output: result });
        const notes = [later.get(input.callID), answer.context, answer.halt && answer.notice].filter(text);
        later.delete(input.callID);
        if (notes.length) output.output = [output.output, ...notes].join("\n\n");
      } catch {}
    },

    "experimental.chat.system.transform": async (input, output) => {
      try {
        await start(input.sessionID);
        if (context.has(input.sessionID)) output.system.push(context.get(input.sessionID));
      } catch {}
    },

    dispose: async () => {
      try {
        const open = [...started.keys()].filter((sessionID) => !ended.has(sessionID));
        open.forEach((sessionID) => ended.add(sessionID));
        await Promise.all(open.map((sessionID) => hook("session.exit", sessionID)));
      } catch {}
    },
  };
};
