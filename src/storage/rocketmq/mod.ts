/**
 * The cluster log on Apache RocketMQ 5: the only folder that imports a RocketMQ client. `scripts/rocketmq.sh`
 * starts a local RocketMQ and creates the topics; `RocketMqLog` is the `ClusterLog` adapter.
 */
export { RocketMqLog } from "./rocketmq_log.ts";
export { type ClusterLogLogger, consumerGroupFor, type RocketMqLogOptions } from "./options.ts";
export { prepareOrderlyReader } from "./admin.ts";
