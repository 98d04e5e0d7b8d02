// nginx (Debian's nginx-light has auth_request) in front of the stub upstream, asking Portcullis's
// nginx decision door before each request: the "nginx + auth_request → Portcullis" bench row.
// One process (master_process off) so its CPU per request is read from one pid.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

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
  upstream portcullis { server ${dec}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / {
      auth_request /_portcullis;
      auth_request_set $portcullis_subject $upstream_http_x_auth_subject;
      proxy_set_header X-Auth-Subject $portcullis_subject;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://app;
    }
    location = /_portcullis {
      internal;
      proxy_pass http://portcullis/nginx;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-For $remote_addr;
    }
  }
}
`,
  );
  const child = ctx.spawn('nginx', ['-e', 'stderr', '-p', dir, '-c', conf]);
  await ctx.waitPort(port, child);
  return child;
}
