// The composition root: every long-lived part is built here, by hand, from the options and the
// policy. Nothing else constructs servers, stores or sinks.
import type { Server } from 'node:net';
import type { Logger } from 'pino';
import { auditHeadRoutes } from './admin/audit-head.js';
import { breakerRoutes } from './admin/breakers.js';
import { jwksResponse } from './admin/jwks.js';
import { keyRoutes } from './admin/keys.js';
import { AdminServer } from './admin/server.js';
import { storeReadiness } from './admin/store-readiness.js';
import { usageRoutes } from './admin/usage.js';
import type { AuditPlan } from './audit/compile.js';
import { AuditWorker, defaultWorkerEntry } from './audit/offthread.js';
import { AuditPipeline } from './audit/pipeline.js';
import { AuditRecorder } from './audit/recorder.js';
import { auditPresenceGuard } from './audit/reload-guard.js';
import { createKeyStore, DynamicKeyLookup, keyIdGuard } from './authn/key-store.js';
import type { RequestRecorder } from './core/context.js';
import { type EchoUpstream, startEchoUpstream } from './demo/echo-upstream.js';
import { openPolicy, type PlanManager } from './engine/compile.js';
import { Engine } from './engine/engine.js';
import { EventBus } from './events.js';
import { H2Door } from './h2/door.js';
import { createSniffingServer, listenOn } from './h2/sniff.js';
import { createStore } from './limits/create.js';
import { storeUrlGuard } from './limits/reload-guard.js';
import { createBreakerStage } from './proxy/breaker.stage.js';
import { ProxyServer } from './proxy/server.js';
import { Balancers } from './upstream/balancer.js';

export interface AppOptions {
  readonly policyPath: string;
  readonly listen: { readonly host: string; readonly port: number };
  readonly admin: { readonly host: string; readonly port: number } | null;
  readonly adminToken?: string | undefined;
  readonly drainMs: number;
  readonly demo: boolean;
  readonly logger: Logger;
  readonly watch?: boolean | undefined;
  /** Serve h2c (HTTP/2 prior knowledge) beside HTTP/1.1 on the proxy listener. */
  readonly h2c?: boolean | undefined;
  readonly env?: NodeJS.ProcessEnv | undefined;
}

export interface App {
  readonly proxyUrl: string;
  readonly adminUrl: string | undefined;
  readonly policy: PlanManager;
  readonly bus: EventBus;
  /** The HTTP/2 door: a TLS listener hands it the sockets that chose "h2" by ALPN. */
  readonly h2: Pick<H2Door, 'accept'>;
  shutdown(): Promise<void>;
}

/** How long startup waits for the limits store before serving anyway. */
const STORE_WARMUP_MS = 3_000;

export async function startApp(opts: AppOptions): Promise<App> {
  const logger = opts.logger;
  const bus = new EventBus();
  const env = opts.env ?? process.env;
  let echo: EchoUpstream | undefined;
  if (opts.demo) {
    echo = await startEchoUpstream();
    if (!env.DEMO_UPSTREAM) env.DEMO_UPSTREAM = echo.url;
  }
  // Dynamic API keys: every compiled API-key authenticator looks them up after the policy's own;
  // the lookup's store is attached once the policy tells us store.url.
  const dynamicKeys = new DynamicKeyLookup();
  let policy: PlanManager;
  try {
    policy = await openPolicy(opts.policyPath, { watch: opts.watch ?? true, logger, bus, env }, { dynamicKeys });
  } catch (err) {
    await echo?.close();
    throw err;
  }
  // Audit is long-lived: built once from the first plan, reconfigured by reloads (which cannot
  // turn it on or off); it records the startup load itself because the bus published that before
  // anyone could subscribe.
  const audit = policy.plan.audit ? createAudit(policy.plan.audit, logger, bus, env) : undefined;
  if (audit) {
    audit.recordSystem({ type: 'policy.loaded', hash: policy.plan.hash, files: policy.plan.files, trigger: 'startup' });
    policy.onSwap((plan) => audit.onPlan(plan.audit));
  }
  const recorder: RequestRecorder | undefined = audit ? new AuditRecorder(audit) : undefined;
  // The limits store is long-lived too: built from the first plan's store.url.
  const store = createStore(policy.plan.limits, logger);
  const keyStore = createKeyStore(store.url);
  dynamicKeys.attach(keyStore);
  // Static keys revoked at runtime are refused from the first request (bounded, alongside the
  // warm-up: a store that is down must not keep the gateway from starting; the lookup retries).
  const revocations = dynamicKeys.syncRevocations();
  // Connected (and its scripts loaded) before the first request, or said why not: the first
  // requests must not spend their short store timeout on a handshake.
  if (!(await store.store.warmUp(STORE_WARMUP_MS))) logger.warn({ waitedMs: STORE_WARMUP_MS }, 'limits store not reachable yet: serving with store.onError until it is');
  if (!(await revocations)) logger.warn('cannot read the revoked static keys from the store yet: retrying in the background');
  const balancers = new Balancers({ logger, bus });
  balancers.sync(policy.plan);
  policy.onSwap((plan) => balancers.sync(plan));
  const engine = Engine.create({ logger, store, bus });
  const admit = [createBreakerStage(balancers)];
  const proxy = new ProxyServer({ policy, engine, admit, logger, recorder });
  // The HTTP/2 door: same engine and door stages; sockets reach it by ALPN (TLS) or the h2c preface.
  const h2 = new H2Door({ policy, engine, admit, logger, recorder });
  let cleartext: Server | undefined;
  let admin: AdminServer | undefined;
  let proxyUrl: string;
  let adminUrl: string | undefined;
  try {
    // Refuses to start, like an invalid policy, when a static key id is already a dynamic key's.
    await policy.addGuard(keyIdGuard(keyStore, logger));
    await policy.addGuard(auditPresenceGuard(audit !== undefined));
    await policy.addGuard(storeUrlGuard(store.url));
    // Audited from the first request on: no answered request waits for the worker to start.
    await audit?.open();
    if (opts.h2c) {
      cleartext = createSniffingServer(
        (s) => h2.accept(s),
        (s) => proxy.server.emit('connection', s),
      );
      proxyUrl = await listenOn(cleartext, opts.listen.host, opts.listen.port);
    } else proxyUrl = await proxy.listen(opts.listen.host, opts.listen.port);
    if (opts.admin !== null) {
      admin = new AdminServer({ host: opts.admin.host, port: opts.admin.port, token: opts.adminToken, logger, policy });
      admin.addReadinessCheck(storeReadiness(store.store, () => policy.plan));
      admin.openRoute('/.well-known/jwks.json', () => jwksResponse(policy.plan));
      breakerRoutes((m, p, h) => admin!.route(m, p, h), balancers);
      usageRoutes(
        (m, p, h) => admin!.route(m, p, h),
        store,
        () => policy.plan,
      );
      keyRoutes(
        (m, p, h) => admin!.route(m, p, h),
        () => keyStore,
        bus,
        () => policy.plan,
      );
      auditHeadRoutes((m, p, h) => admin!.route(m, p, h), audit);
      adminUrl = await admin.listen();
    }
  } catch (err) {
    cleartext?.close();
    await proxy.shutdown(0).catch(() => undefined);
    await h2.shutdown(0).catch(() => undefined);
    await audit?.close();
    await store.store.close();
    dynamicKeys.close();
    await keyStore.close();
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
    h2,
    shutdown() {
      stopping ??= (async () => {
        admin?.setDraining();
        await policy.close();
        cleartext?.close();
        await Promise.all([proxy.shutdown(opts.drainMs), h2.shutdown(opts.drainMs)]);
        await audit?.close(); // after the drain: the last requests' events are flushed too
        await store.store.close();
        dynamicKeys.close();
        await keyStore.close();
        await admin?.close();
        await echo?.close();
      })();
      return stopping;
    },
  };
}

/**
 * The audit worker thread when the compiled worker exists (a build), else the in-thread pipeline
 * (running from TypeScript sources, or PORTCULLIS_AUDIT_WORKER=0 to compare the two).
 */
function createAudit(plan: AuditPlan, logger: Logger, bus: EventBus, env: NodeJS.ProcessEnv): AuditWorker | AuditPipeline {
  const entry = env.PORTCULLIS_AUDIT_WORKER === '0' ? undefined : defaultWorkerEntry();
  return entry ? new AuditWorker(plan, { logger, bus, entry }) : new AuditPipeline(plan, { logger, bus });
}
