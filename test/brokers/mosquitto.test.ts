// The broker matrix on mosquitto 2.0 (one node, no cluster), once in MQTT 5 and once in 3.1.1.
// test/helpers/matrix.ts says what is checked; with one node, "another node" is the same one, and
// kill -9 of it loses what it had acknowledged and not yet delivered: the server asks `replay`.
import { Mosquitto } from "../helpers/mosquitto.js";
import { brokerMatrix } from "../helpers/matrix.js";

brokerMatrix(new Mosquitto({ persistence: true }), { retainedAcrossNodes: true, singleNode: true, auto: "5" });
brokerMatrix(new Mosquitto({ persistence: true, protocol: 4 }), { retainedAcrossNodes: true, singleNode: true, auto: "5" });
