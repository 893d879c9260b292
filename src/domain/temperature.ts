// Temperature alarm rule shared by the config check and the monitor. Pure.

/** An out-of-bounds alarm clears only this far back inside the bounds, so a reading hovering at a
 *  bound does not raise and clear it every minute. A band must be wider than twice this. */
export const HYSTERESIS_C = 0.5;
