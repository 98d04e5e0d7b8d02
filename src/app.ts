// The composition root: every long-lived part is built here, by hand, from the options and the
// policy. Nothing else constructs servers, stores or sinks.
import type { Logger } from 'pino';
import { EventBus } from './events.js';
import { PolicyManager } from './policy/manager.js';
import { ProxyServer, type RequestRecorder } from './server.js';
import { createStages } from './stages.js';
import { AdminServer } from './admin/server.js';
import { startEchoUpstream, type EchoUpstream } from './demo/echo-upstream.js';
import { jwksResponse } from './upstream/identity-jwt.js';

export interface AppOptions {
  readonly policyPath: string;
  readonly listen: { readonly host: string; readonly port: number };
  readonly admin: { readonly host: string; readonly port: number } | null;
  readonly adminToken?: string;
  readonly drainMs: number;
  readonly demo: boolean;
  readonly logger: Logger;
  readonly watch?: boolean;
  readonly env?: NodeJS.ProcessEnv;
}

export interface App {
  readonly proxyUrl: string;
  readonly adminUrl: string | undefined;
  readonly policy: PolicyManager;
  readonly bus: EventBus;
  shutdown(): Promise<void>;
}

export async function startApp(opts: AppOptions): Promise<App> {
  const logger = opts.logger;
  const bus = new EventBus();
  const env = opts.env ?? process.env;
  let echo: EchoUpstream | undefined;
  if (opts.demo) {
    echo = await startEchoUpstream();
    if (!env.DEMO_UPSTREAM) env.DEMO_UPSTREAM = echo.url;
  }
  let policy: PolicyManager;
  try {
    policy = await PolicyManager.open(opts.policyPath, { watch: opts.watch ?? true, logger, bus, env });
  } catch (err) {
    await echo?.close();
    throw err;
  }
  const recorder: RequestRecorder | undefined = undefined;
  const proxy = new ProxyServer({ policy, stages: createStages({ logger }), logger, recorder });
  let admin: AdminServer | undefined;
  let proxyUrl: string;
  let adminUrl: string | undefined;
  try {
    proxyUrl = await proxy.listen(opts.listen.host, opts.listen.port);
    if (opts.admin !== null) {
      admin = new AdminServer({ host: opts.admin.host, port: opts.admin.port, token: opts.adminToken, logger, policy });
      admin.openRoute('/.well-known/jwks.json', () => jwksResponse(policy.plan));
      adminUrl = await admin.listen();
    }
  } catch (err) {
    await proxy.shutdown(0).catch(() => undefined);
    await policy.close();
    await echo?.close();
    throw err;
  }
  logger.info({ url: proxyUrl, policy: opts.policyPath, hash: policy.plan.hash }, 'portcullis listening');

  let stopping: Promise<void> | undefined;
  return {
    proxyUrl,
    adminUrl,
    policy,
    bus,
    shutdown() {
      stopping ??= (async () => {
        admin?.setDraining();
        await policy.close();
        await proxy.shutdown(opts.drainMs);
        await admin?.close();
        await echo?.close();
      })();
      return stopping;
    },
  };
}
