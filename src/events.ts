// The internal event bus: system events that audit (and logs) subscribe to. Publishing is
// synchronous and cheap; subscribers must not throw and must not block (audit queues).

export type SystemEvent =
  | { readonly type: 'policy.loaded'; readonly hash: string; readonly files: readonly string[]; readonly trigger: string }
  | { readonly type: 'policy.rejected'; readonly errors: readonly string[]; readonly trigger: string }
  | { readonly type: 'breaker.transition'; readonly upstream: string; readonly target: string; readonly from: string; readonly to: string }
  | { readonly type: 'key.created'; readonly keyId: string; readonly tenant: string | undefined }
  | { readonly type: 'key.revoked'; readonly keyId: string }
  | { readonly type: 'lockout'; readonly ip: string; readonly untilMs: number }
  | { readonly type: 'store.degraded'; readonly error: string }
  | { readonly type: 'store.recovered' }
  | {
      readonly type: 'tenant.crossed';
      readonly requestId: string;
      readonly route: string;
      readonly subject: string;
      readonly keyId: string | null;
      readonly callerTenant: string | null;
      readonly targetTenant: string;
      /** The cross-tenant role, with the inheritance chain that makes it so ("tier2 → support"). */
      readonly role: string;
    }
  | { readonly type: 'upstream.health'; readonly upstream: string; readonly target: string; readonly from: string; readonly to: string; readonly reason: string }
  | { readonly type: 'sink.failed'; readonly sink: string; readonly error: string }
  | { readonly type: 'sink.recovered'; readonly sink: string }
  | {
      readonly type: 'audit.checkpoint';
      readonly instance: string;
      readonly seq: number;
      readonly hash: string;
      readonly alg: string;
      readonly keyId: string;
      readonly reason: string;
      readonly sig: string;
    };

export type SystemEventType = SystemEvent['type'];
type Listener = (event: SystemEvent) => void;

export class EventBus {
  #listeners: Listener[] = [];

  subscribe(listener: Listener): () => void {
    this.#listeners.push(listener);
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  publish(event: SystemEvent): void {
    for (const l of this.#listeners) {
      try {
        l(event);
      } catch {
        // A failing subscriber must not take the publisher (a request, a reload) down with it.
      }
    }
  }
}
