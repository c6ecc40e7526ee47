import { neutralise } from "./format";

/** Text an agent could shape (its errors, task, the command lines recovery read about its
 * processes): marked as agent text, quoted, left to right, its controls and bidi characters
 * shown as `<U+XXXX>`, so it never looks like our own words or a human's notes. */
export function AgentText({ text, block = false }: { text: string; block?: boolean }) {
  const shown = neutralise(text);
  return block ? (
    <pre className="agent" data-provenance="agent" title="agent text: untrusted" dir="ltr">
      {shown}
    </pre>
  ) : (
    <q className="agent" data-provenance="agent" title="agent text: untrusted" dir="ltr">
      {shown}
    </q>
  );
}
