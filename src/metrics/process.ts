/**
 * The standard process metrics of Prometheus client libraries (CPU, memory,
 * file descriptors, start time) and Node's heap, so a dashboard built for
 * any exporter shows tws too. Read when scraped; /proc where Linux has it.
 */
import { getHeapStatistics } from 'node:v8';
import { maxFds, openFds } from '../util/fds';

export type Row = [name: string, type: 'counter' | 'gauge', help: string, value: number];

const startedAt = Date.now() / 1000 - process.uptime();

/**
 * process.memoryUsage() reads /proc/self/stat, so it throws (EMFILE) when
 * the process is out of fds, which is exactly when someone scrapes to see
 * why: then RSS is left out and the heap comes from V8, which needs no fd.
 */
function memory(): { rss?: number; heapTotal: number; heapUsed: number; external?: number } {
  try {
    return process.memoryUsage();
  } catch {
    const h = getHeapStatistics();
    return { heapTotal: h.total_heap_size, heapUsed: h.used_heap_size, external: h.external_memory };
  }
}

export function processRows(): Row[] {
  const cpu = process.cpuUsage();
  const mem = memory();
  const rows: Row[] = [
    ['process_cpu_seconds_total', 'counter', 'User and system CPU time spent, in seconds (all threads).', (cpu.user + cpu.system) / 1e6],
    ['process_start_time_seconds', 'gauge', 'Start time of the process since the Unix epoch, in seconds.', Math.floor(startedAt)],
    ['nodejs_heap_size_total_bytes', 'gauge', 'Size of the JavaScript heap in bytes.', mem.heapTotal],
    ['nodejs_heap_size_used_bytes', 'gauge', 'JavaScript heap in use, in bytes.', mem.heapUsed],
  ];
  if (mem.rss !== undefined) rows.push(['process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', mem.rss]);
  if (mem.external !== undefined) {
    rows.push(['nodejs_external_memory_bytes', 'gauge', 'Memory of C++ objects bound to JavaScript objects (Buffers), in bytes.', mem.external]);
  }
  const fds = openFds();
  if (fds !== undefined) rows.push(['process_open_fds', 'gauge', 'Open file descriptors.', fds]);
  const max = maxFds();
  if (max !== undefined) rows.push(['process_max_fds', 'gauge', 'Limit on open file descriptors.', max]);
  return rows;
}
