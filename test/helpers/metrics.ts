/** Scrapes a tws process's --metrics endpoint. */
import { request } from 'node:http';
import type { Proc } from './procs';
import { waitFor } from './wait';

export function scrape(port: number, method: 'GET' | 'HEAD' = 'GET'): Promise<{ status: number; type: string; length: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/metrics', method, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({
        status: res.statusCode ?? 0, type: String(res.headers['content-type']), length: Number(res.headers['content-length']), body,
      }));
    }).on('error', reject).end();
  });
}

/** The port a process serves its metrics on, from its log. */
export async function metricsPort(p: Proc): Promise<number> {
  return Number(/metrics on http:\/\/[^\s]*:(\d+)\/metrics/.exec(await p.waitLog(/metrics on http:\/\/\S+/))![1]);
}

/** The value of one sample, e.g. value(body, 'tws_streams_closed_total{how="fin"}'). */
export function value(body: string, sample: string): number | undefined {
  const row = body.split('\n').find((l) => l.startsWith(`${sample} `));
  return row === undefined ? undefined : Number(row.slice(sample.length + 1));
}

/** Scrapes until `ready(body)` holds (at most `timeoutMs`) and returns the last scrape, for exact assertions on it. */
export async function scrapeWhen(port: number, ready: (body: string) => boolean, timeoutMs = 10_000): Promise<{ status: number; type: string; body: string }> {
  let last = await scrape(port);
  await waitFor(async () => ready((last = await scrape(port)).body), timeoutMs);
  return last;
}
