// The wire between the fake gpiod tools (tools.ts, one process per tool run) and the fake GPIO
// character device (kernel.ts, in the test's process): JSON lines over a unix socket named by
// $GPIOD_EMU_SOCKET. One connection is one process's view of /dev/gpiochip*: when it closes (the tool
// exited, or was killed) the kernel releases every line it requested, as Linux does when the last
// file descriptor of a line request closes.
//
//   tool → kernel   {id, op: "hello", pid, tool, argv}
//                   {id, op: "list"}                                  → {chips: ChipInfo[]}
//                   {id, op: "open", chip}                            → {chip: ChipInfo} | {errno}
//                   {id, op: "request", chip, offsets, direction, values?, edge, consumer}
//                                                                     → {handle} | {errno}
//                   {id, op: "set", handle, values: [offset, 0|1][]}  → {} | {errno}
//                   {id, op: "get", handle}                           → {values} | {errno}
//                   {id, op: "bye"}                                   → {} once every line is released
//                   (a tool sends it before it exits, so that the lines are free before its parent
//                   sees it gone: Linux releases them when the process's files close, before the exit)
//   kernel → tool   {ev: "edge", handle, offset, rising, sec, nsec}   an edge on a requested input
//                   {ev: "gone", handle}                              the chip went away (ENODEV)

export type Level = 0 | 1;
export type Edge = "none" | "rising" | "falling" | "both";

export interface ChipInfo {
  /** e.g. "gpiochip0" */
  name: string;
  label: string;
  ngpio: number;
  /** Line names (the Pi's device tree names them, e.g. "GPIO17"); null: unnamed. */
  names: (string | null)[];
}

export type Request =
  | { id: number; op: "hello"; pid: number; tool: string; argv: string[] }
  | { id: number; op: "list" }
  | { id: number; op: "open"; chip: string }
  | { id: number; op: "request"; chip: string; offsets: number[]; direction: "input" | "output"; values?: Level[]; edge: Edge; consumer: string }
  | { id: number; op: "set"; handle: number; values: [number, Level][] }
  | { id: number; op: "get"; handle: number }
  | { id: number; op: "bye" };

export type Reply = { id: number; errno?: string; chips?: ChipInfo[]; chip?: ChipInfo; handle?: number; values?: [number, Level][] };

export type KernelEvent = { ev: "edge"; handle: number; offset: number; rising: boolean; sec: number; nsec: number } | { ev: "gone"; handle: number };

/** strerror(3) of the errnos the kernel answers with. */
export const STRERROR: Readonly<Record<string, string>> = {
  EBUSY: "Device or resource busy",
  EACCES: "Permission denied",
  EPERM: "Operation not permitted",
  ENOENT: "No such file or directory",
  ENODEV: "No such device",
  EINVAL: "Invalid argument",
  EIO: "Input/output error",
};

export function strerror(errno: string): string {
  return STRERROR[errno] ?? errno;
}
