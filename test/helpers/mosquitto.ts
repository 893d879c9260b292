// The test suite's broker is the benchmarks' broker (scripts/broker.ts).
export { hasMosquitto, Mosquitto } from "../../scripts/broker.js";
