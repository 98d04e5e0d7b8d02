// nginx (Debian's nginx-light has auth_request) in front of the stub upstream, asking Portcullis's
// nginx decision door before each request: the "nginx + auth_request → Portcullis" bench row.
// One process (master_process off) so its CPU per request is read from one pid. The site uses the
// shipped deploy/decisions/nginx files.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The nginx files Portcullis ships for auth_request: the bench measures them as users run them. */
const SNIPPETS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../deploy/decisions/nginx');

/** Why nginx cannot run here, or undefined when it can. */
export function nginxMissing() {
  try {
    execFileSync('nginx', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'nginx is not installed (Debian: apt-get install nginx-light)';
  }
  return undefined;
}

/** Starts nginx on `port` in front of `upstream`, asking `decisions` (http://HOST:PORT) at /nginx. */
export async function startNginx(ctx, { port, upstream, decisions }) {
  const dir = fs.mkdtempSync(path.join(ctx.work, 'nginx-'));
  const conf = path.join(dir, 'nginx.conf');
  const up = new URL(upstream).host;
  const dec = new URL(decisions).host;
  fs.writeFileSync(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream app { server ${up}; keepalive 64; }
  upstream portcullis_decisions { server ${dec}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    include ${SNIPPETS}/portcullis-auth.conf;
    location / {
      include ${SNIPPETS}/portcullis-protect.conf;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://app;
    }
  }
}
`,
  );
  const child = ctx.spawn('nginx', ['-e', 'stderr', '-p', dir, '-c', conf]);
  await ctx.waitPort(port, child);
  return child;
}
