// An upstream that reports usage every way Portcullis meters: a header, a trailer, OpenAI- and
// Anthropic-style JSON and server-sent events, each with and without usage. `/tokens/N` answers
// with header N (any tenant, any count). `/held-stream` sends an Anthropic stream's start and one
// delta and then waits for the client to leave.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface UsageUpstream {
  readonly url: string;
  close(): Promise<void>;
}

const sse = (events: readonly unknown[]): string => events.map((e) => (typeof e === 'string' ? e : `data: ${JSON.stringify(e)}\n\n`)).join('');

/** What each path answers and the tokens it reports. */
export const USAGE_CASES = {
  '/header': 12,
  '/trailer': 20,
  '/openai-json': 15,
  '/anthropic-json': 30,
  '/openai-sse': 10,
  '/anthropic-sse': 55,
  '/json-without-usage': 0,
  '/sse-without-usage': 0,
  '/plain': 0,
} as const;

export async function usageUpstream(): Promise<UsageUpstream> {
  const server: Server = createServer((req, res) => {
    req.resume();
    const path = req.url ?? '/';
    const tokens = /^\/tokens\/(\d+)$/.exec(path);
    if (tokens) return void res.writeHead(200, { 'x-usage-tokens': tokens[1]!, 'content-type': 'text/plain' }).end('ok');
    switch (path) {
      case '/header':
        return void res.writeHead(200, { 'X-Usage-Tokens': '12', 'content-type': 'text/plain' }).end('header');
      case '/trailer':
        res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-usage-tokens' });
        res.write('trailer body');
        res.addTrailers({ 'x-usage-tokens': '20' });
        return void res.end();
      case '/openai-json':
        return void res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ id: 'chatcmpl-1', choices: [{ message: { role: 'assistant', content: 'hi' } }], usage: { prompt_tokens: 9, completion_tokens: 6, total_tokens: 15 } }));
      case '/anthropic-json':
        return void res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ id: 'msg_1', type: 'message', content: [{ type: 'text', text: 'hi' }], usage: { input_tokens: 21, output_tokens: 9 } }));
      case '/openai-sse':
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(sse([{ choices: [{ delta: { content: 'a' } }], usage: null }]));
        res.write(sse([{ choices: [], usage: { prompt_tokens: 8, completion_tokens: 2, total_tokens: 10 } }]));
        return void res.end('data: [DONE]\n\n');
      case '/anthropic-sse':
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`event: message_start\n${sse([{ type: 'message_start', message: { id: 'm', usage: { input_tokens: 25, output_tokens: 1 } } }])}`);
        res.write(`event: message_delta\n${sse([{ type: 'message_delta', usage: { output_tokens: 30 } }])}`);
        return void res.end(`event: message_stop\n${sse([{ type: 'message_stop' }])}`);
      case '/held-stream':
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`event: message_start\n${sse([{ type: 'message_start', message: { id: 'm', usage: { input_tokens: 7, output_tokens: 1 } } }])}`);
        res.write(`event: message_delta\n${sse([{ type: 'message_delta', usage: { output_tokens: 4 } }])}`);
        return; // never ends: the client leaves
      case '/json-without-usage':
        return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"id":"x","choices":[]}');
      case '/sse-without-usage':
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        return void res.end(sse([{ choices: [{ delta: { content: 'a' } }] }, 'data: [DONE]\n\n']));
      default:
        return void res.writeHead(200, { 'content-type': 'text/plain' }).end('plain');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
