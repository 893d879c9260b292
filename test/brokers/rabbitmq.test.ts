// The broker matrix on a three-node RabbitMQ 3.10 cluster: rabbitmq_mqtt (3.1.1), quorum session
// queues (docs/brokers/rabbitmq.conf). test/helpers/matrix.ts says what is checked. RabbitMQ 3.10
// keeps retained messages per node: a server sees a bank's retained status only on the node the
// bank published it to (the contract says so; the matrix checks exactly that).
import { RabbitCluster } from "../../scripts/brokers.js";
import { brokerMatrix } from "../helpers/matrix.js";

brokerMatrix(new RabbitCluster({ nodes: 3 }), { retainedAcrossNodes: false, auto: "3.1.1", startMs: 150_000 });
