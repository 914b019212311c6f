// What MoELayer offers a routing recorder (recorder.ts, replay.ts): a look at every forward's routing,
// and a way to swap the router's choice for another (a recorded one) before the experts run.
import type { RouterOutput } from '../contracts.js';
import type { MoEForwardDetails, MoELayer } from '../layer.js';

export interface RoutingHook {
  /** After each forward, with what it computed. */
  observe?(layer: MoELayer, details: MoEForwardDetails): void;
  /** Before the experts run: the routing to use instead of the router's, or null to keep it. */
  force?(layer: MoELayer, routed: RouterOutput): RouterOutput | null;
}
