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
import { AccessLog, bothRecorders } from './audit/access-log.js';
import type { AuditPlan } from './audit/compile.js';
import { AuditWorker, defaultWorkerEntry } from './audit/offthread.js';
import { AuditPipeline } from './audit/pipeline.js';
import { AuditRecorder } from './audit/recorder.js';
import { auditPresenceGuard } from './audit/reload-guard.js';
import { TracingRecorder } from './audit/trace-recorder.js';
import { createKeyStore, DynamicKeyLookup, keyIdGuard } from './authn/key-store.js';
import type { ListenerTls } from './config/serve-config.js';
import { TlsFiles } from './config/tls-files.js';
import type { RequestRecorder } from './core/context.js';
import { concurrencyGuard } from './decisions/concurrency-guard.js';
import { DecisionService } from './decisions/decide.js';
import { GrpcDecisionServer } from './decisions/grpc.js';
import { DecisionHttpServer } from './decisions/http.js';
import { type EchoUpstream, startEchoUpstream } from './demo/echo-upstream.js';
import { openPolicy, type PlanManager } from './engine/compile.js';
import { Engine } from './engine/engine.js';
import { EventBus } from './events.js';
import { H2Door } from './h2/door.js';
import { createSniffingServer } from './h2/sniff.js';
import { TokenCharger } from './limits/charge.js';
import { createStore } from './limits/create.js';
import { storeUrlGuard } from './limits/reload-guard.js';
import { listenOn } from './listen.js';
import { TenantLatency } from './observability/latency.js';
import { tlsHandshakeFailuresTotal, tlsReloadsTotal } from './observability/metrics.js';
import { defaultTraceWorkerEntry, TraceExporter } from './observability/trace-export.js';
import { TraceSampler, type TracingConfig, tracingFromEnv } from './observability/trace-sampler.js';
import { createBreakerStage } from './proxy/breaker.stage.js';
import { ProxyServer } from './proxy/server.js';
import { TlsListener } from './proxy/tls-listener.js';
import { Balancers } from './upstream/balancer.js';

export interface AppOptions {
  readonly policyPath: string;
  /** null: `--listen off`, a pure decision service. */
  readonly listen: { readonly host: string; readonly port: number } | null;
  /** The HTTP decision listener (Envoy ext_authz HTTP, forward auth, nginx auth_request); null or absent: none. */
  readonly decisions?: { readonly host: string; readonly port: number } | null | undefined;
  /** The headers nginx's auth_request carries the original URI and method in (defaults X-Original-URI, X-Original-Method). */
  /** The Envoy ext_authz gRPC listener; null or absent: none. */
  readonly decisionsGrpc?: { readonly host: string; readonly port: number } | null | undefined;
  readonly nginxHeaders?: { readonly uri?: string | undefined; readonly method?: string | undefined } | undefined;
  readonly admin: { readonly host: string; readonly port: number } | null;
  readonly adminToken?: string | undefined;
  readonly drainMs: number;
  readonly demo: boolean;
  readonly logger: Logger;
  readonly watch?: boolean | undefined;
  /** Serve h2c (HTTP/2 prior knowledge) beside HTTP/1.1 on the proxy listener. */
  readonly h2c?: boolean | undefined;
  readonly env?: NodeJS.ProcessEnv | undefined;
  /** One log line per request (a share of them when sample < 1); undefined: off. */
  readonly accessLog?: { readonly sample: number } | undefined;
  /** TLS on the proxy listener (certificate files, client certificates); absent: cleartext. */
  readonly tls?: ListenerTls | undefined;
  /** TLS on the admin listener; absent: plain HTTP. */
  readonly adminTls?: ListenerTls | undefined;
}

export interface App {
  /** "" with `--listen off`. */
  readonly proxyUrl: string;
  readonly decisionsUrl: string | undefined;
  /** HOST:PORT of the Envoy ext_authz gRPC listener, when one runs. */
  readonly decisionsGrpcAddress: string | undefined;
  readonly adminUrl: string | undefined;
  readonly policy: PlanManager;
  readonly bus: EventBus;
  /** The HTTP/2 door: a TLS listener hands it the sockets that chose "h2" by ALPN. */
  readonly h2: Pick<H2Door, 'accept'>;
  /** Reads the TLS files again now (SIGHUP), as a change to them would. */
  reloadTls(): void;
  shutdown(): Promise<void>;
}

/** How long startup waits for the limits store before serving anyway. */
const STORE_WARMUP_MS = 3_000;

export async function startApp(opts: AppOptions): Promise<App> {
  const logger = opts.logger;
  const bus = new EventBus();
  const env = opts.env ?? process.env;
  // Before anything starts: an OTEL_* value that cannot be honoured refuses the start.
  const tracing = tracingFromEnv(env);
  // Read first: files that cannot be used stop the start before anything is opened.
  const proxyTls = opts.tls === undefined ? undefined : new TlsFiles(opts.tls);
  const adminTls = opts.adminTls === undefined ? undefined : new TlsFiles(opts.adminTls);
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
  const audited: RequestRecorder | undefined = bothRecorders(audit ? new AuditRecorder(audit) : undefined, opts.accessLog ? new AccessLog(logger, opts.accessLog) : undefined);
  const traces = tracing ? createTraces(tracing, logger, env) : undefined;
  const recorder = traces ? new TracingRecorder(audited, traces) : audited;
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
  const engine = Engine.create({ logger, store, bus, sampler: traces && tracing ? new TraceSampler(tracing) : undefined });
  const charger = new TokenCharger(store, logger);
  const latency = new TenantLatency();
  const admit = [createBreakerStage(balancers)];
  const proxy = new ProxyServer({ policy, engine, admit, logger, recorder, charger, latency });
  // The HTTP/2 door: same engine and door stages; sockets reach it by ALPN (TLS) or the h2c preface.
  const h2 = new H2Door({ policy, engine, admit, logger, recorder, charger, latency });
  let cleartext: Server | undefined;
  const tlsListener =
    proxyTls === undefined
      ? undefined
      : new TlsListener({ files: proxyTls, clientAuth: opts.tls!.clientAuth, http: proxy.server, h2: (s) => h2.accept(s), onHandshakeError: () => tlsHandshakeFailuresTotal.labels('proxy').inc() });
  // Every decision door decides with the proxy's engine: the same lockouts, leases and audit.
  const service = opts.decisions || opts.decisionsGrpc ? new DecisionService({ policy, engine, recorder, logger }) : undefined;
  const decisions = service && opts.decisions ? new DecisionHttpServer({ service, logger, nginxUriHeader: opts.nginxHeaders?.uri, nginxMethodHeader: opts.nginxHeaders?.method }) : undefined;
  const grpcDoor = service && opts.decisionsGrpc ? new GrpcDecisionServer({ decisions: service, logger }) : undefined;
  let decisionsGrpcAddress: string | undefined;
  let admin: AdminServer | undefined;
  let proxyUrl = '';
  let decisionsUrl: string | undefined;
  let adminUrl: string | undefined;
  try {
    // Refuses to start, like an invalid policy, when a static key id is already a dynamic key's.
    await policy.addGuard(keyIdGuard(keyStore, logger));
    await policy.addGuard(auditPresenceGuard(audit !== undefined));
    await policy.addGuard(storeUrlGuard(store.url));
    if (service) await policy.addGuard(concurrencyGuard);
    // Audited from the first request on: no answered request waits for the worker to start.
    await audit?.open();
    if (opts.listen !== null) {
      if (tlsListener !== undefined) proxyUrl = await tlsListener.listen(opts.listen.host, opts.listen.port);
      else if (opts.h2c) {
        cleartext = createSniffingServer(
          (s) => h2.accept(s),
          (s) => proxy.server.emit('connection', s),
        );
        proxyUrl = await listenOn(cleartext, opts.listen.host, opts.listen.port);
      } else proxyUrl = await proxy.listen(opts.listen.host, opts.listen.port);
      if (proxyTls !== undefined) watchTls(proxyTls, 'proxy', logger);
    }
    if (decisions && opts.decisions) decisionsUrl = await decisions.listen(opts.decisions.host, opts.decisions.port);
    if (grpcDoor && opts.decisionsGrpc) decisionsGrpcAddress = await grpcDoor.listen(opts.decisionsGrpc.host, opts.decisionsGrpc.port);
    if (opts.admin !== null) {
      admin = new AdminServer({ host: opts.admin.host, port: opts.admin.port, token: opts.adminToken, logger, policy, tls: adminTls });
      if (adminTls !== undefined) watchTls(adminTls, 'admin', logger);
      admin.addReadinessCheck(storeReadiness(store.store, () => policy.plan));
      admin.openRoute('/.well-known/jwks.json', () => jwksResponse(policy.plan));
      breakerRoutes((m, p, h) => admin!.route(m, p, h), balancers);
      usageRoutes(
        (m, p, h) => admin!.route(m, p, h),
        store,
        () => policy.plan,
        latency,
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
    proxyTls?.close();
    adminTls?.close();
    const tlsClosed = tlsListener?.close();
    await proxy.shutdown(0).catch(() => undefined);
    await h2.shutdown(0).catch(() => undefined);
    tlsListener?.destroyRemaining();
    await tlsClosed;
    await decisions?.close(0).catch(() => undefined);
    await grpcDoor?.shutdown(0);
    await audit?.close();
    await traces?.close();
    await store.store.close();
    dynamicKeys.close();
    await keyStore.close();
    await policy.close();
    balancers.close();
    await echo?.close();
    throw err;
  }
  logger.info({ url: proxyUrl || undefined, decisions: decisionsUrl, policy: opts.policyPath, hash: policy.plan.hash }, 'portcullis listening');
  if (decisionsGrpcAddress) logger.info({ address: decisionsGrpcAddress, service: 'envoy.service.auth.v3.Authorization' }, 'ext_authz gRPC decisions listening');

  let stopping: Promise<void> | undefined;
  return {
    proxyUrl,
    decisionsUrl,
    decisionsGrpcAddress,
    adminUrl,
    policy,
    bus,
    h2,
    reloadTls() {
      proxyTls?.reload();
      adminTls?.reload();
    },
    shutdown() {
      stopping ??= (async () => {
        admin?.setDraining();
        await policy.close();
        cleartext?.close();
        proxyTls?.close();
        adminTls?.close();
        // Stop accepting handshakes first; the connections already handed over drain with the proxy.
        const tlsClosed = tlsListener?.close();
        await Promise.all([proxy.shutdown(opts.drainMs), h2.shutdown(opts.drainMs), decisions?.close(opts.drainMs), grpcDoor?.shutdown(opts.drainMs)]);
        balancers.close();
        tlsListener?.destroyRemaining();
        await tlsClosed;
        await audit?.close(); // after the drain: the last requests' events are flushed too
        await traces?.close(); // likewise their spans
        await charger.flush();
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

/** Watches a listener's certificate files: a new valid pair is served to new handshakes, a bad one is logged and counted. */
function watchTls(files: TlsFiles, listener: 'proxy' | 'admin', logger: Logger): void {
  files.watch((r) => {
    if (r.result === 'reloaded') {
      tlsReloadsTotal.labels(listener, 'success').inc();
      logger.info({ listener, cert: files.paths.cert }, 'TLS certificate reloaded');
    } else if (r.result === 'failed') {
      tlsReloadsTotal.labels(listener, 'failure').inc();
      logger.error({ listener, err: r.error.message }, 'TLS certificate reload failed: still serving the previous certificate');
    }
  });
}

/**
 * The audit worker thread when the compiled worker exists (a build), else the in-thread pipeline
 * (running from TypeScript sources, or PORTCULLIS_AUDIT_WORKER=0 to compare the two).
 */
function createAudit(plan: AuditPlan, logger: Logger, bus: EventBus, env: NodeJS.ProcessEnv): AuditWorker | AuditPipeline {
  const entry = env.PORTCULLIS_AUDIT_WORKER === '0' ? undefined : defaultWorkerEntry();
  return entry ? new AuditWorker(plan, { logger, bus, entry }) : new AuditPipeline(plan, { logger, bus });
}

/** The trace worker (a build is needed: it runs dist/observability/trace-worker.js). */
function createTraces(tracing: TracingConfig, logger: Logger, env: NodeJS.ProcessEnv): TraceExporter | undefined {
  const entry = defaultTraceWorkerEntry();
  if (entry === undefined) {
    logger.warn('tracing: OTEL_EXPORTER_OTLP_ENDPOINT is set but the trace worker is not built (npm run build): not tracing');
    return undefined;
  }
  logger.info({ protocol: tracing.protocol, sampler: tracing.sampler, ratio: tracing.ratio }, 'tracing: exporting OTLP spans');
  return new TraceExporter({ config: tracing, logger, env, entry });
}
