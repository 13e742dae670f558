/**
 * The standard process metrics of Prometheus client libraries (CPU, memory,
 * file descriptors, start time) and Node's heap, so a dashboard built for
 * any exporter shows tws too. Read when scraped; /proc where Linux has it.
 */
import { maxFds, openFds } from '../util/fds';

export type Row = [name: string, type: 'counter' | 'gauge', help: string, value: number];

const startedAt = Date.now() / 1000 - process.uptime();

export function processRows(): Row[] {
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  const rows: Row[] = [
    ['process_cpu_seconds_total', 'counter', 'User and system CPU time spent, in seconds (all threads).', (cpu.user + cpu.system) / 1e6],
    ['process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', mem.rss],
    ['process_start_time_seconds', 'gauge', 'Start time of the process since the Unix epoch, in seconds.', Math.round(startedAt)],
    ['nodejs_heap_size_total_bytes', 'gauge', 'Size of the JavaScript heap in bytes.', mem.heapTotal],
    ['nodejs_heap_size_used_bytes', 'gauge', 'JavaScript heap in use, in bytes.', mem.heapUsed],
    ['nodejs_external_memory_bytes', 'gauge', 'Memory of C++ objects bound to JavaScript objects (Buffers), in bytes.', mem.external],
  ];
  const fds = openFds();
  if (fds !== undefined) rows.push(['process_open_fds', 'gauge', 'Open file descriptors.', fds]);
  const max = maxFds();
  if (max !== undefined) rows.push(['process_max_fds', 'gauge', 'Limit on open file descriptors.', max]);
  return rows;
}
