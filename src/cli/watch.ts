// `lockerctl watch`: the I/O side of the live view. Stream items fold into the model
// (watch-view.ts applyStream); a frame is drawn on each change (at most 10 a second) and each
// second for the ages. Redraws follow events, not polling. q or Ctrl-C quits.
import { z } from "zod";
import { Alarm, CompartmentRow, LedgerEventView } from "../admin/protocol.js";
import type { AdminClient } from "./client.js";
import type { Style } from "./format.js";
import { applyStream, emptyWatch, renderWatch, type WatchModel } from "./watch-view.js";

const WatchResult = z.object({ device: z.string(), compartments: z.array(CompartmentRow), alarms: z.array(Alarm), events: z.array(LedgerEventView) });
const FRAME_MS = 100;

export async function runWatch(client: AdminClient, user: string, style: Style): Promise<number> {
  const out = process.stdout;
  let model: WatchModel = emptyWatch("", Date.now());
  let timer: NodeJS.Timeout | undefined;
  const draw = () => {
    timer = undefined;
    model = { ...model, now: Date.now() };
    const frame = renderWatch(model, { width: out.columns || 80, height: out.rows || 24, color: style.color });
    out.write(frame.split("\n").map((line, i) => `\x1b[${i + 1};1H${line}`).join(""));
  };
  const schedule = () => (timer ??= setTimeout(draw, FRAME_MS));

  const first = WatchResult.parse(
    await client.request("watch", {}, user, (item) => {
      model = applyStream(model, item);
      schedule();
    }),
  );
  model = { ...model, device: first.device, compartments: first.compartments, alarms: first.alarms, events: first.events, connection: { state: "live" } };

  if (!out.isTTY) {
    // Not a terminal (a pipe, a script): one frame, then done.
    out.write(`${renderWatch(model, { width: 80, height: 24, color: false })}\n`);
    client.close();
    return 0;
  }

  out.write("\x1b[?1049h\x1b[?25l\x1b[2J");
  draw();
  const tick = setInterval(schedule, 1000);
  const onResize = () => {
    out.write("\x1b[2J");
    draw();
  };
  out.on("resize", onResize);
  return new Promise<number>((resolve) => {
    const quit = () => {
      clearInterval(tick);
      clearTimeout(timer);
      out.off("resize", onResize);
      if (process.stdin.isTTY) process.stdin.setRawMode(false);
      process.stdin.pause();
      out.write("\x1b[?25h\x1b[?1049l");
      client.close();
      resolve(0);
    };
    process.once("SIGINT", quit);
    process.once("SIGTERM", quit);
    if (process.stdin.isTTY) process.stdin.setRawMode(true);
    process.stdin.resume();
    process.stdin.on("data", (b: Buffer) => {
      const k = b.toString();
      if (k === "q" || k === "Q" || k === "\x03") quit();
    });
    client.onClose(() => {
      model = { ...model, connection: { state: "lost", since: Date.now(), reason: "lockerd closed the connection" } };
      schedule();
    });
  });
}
