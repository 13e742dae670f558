// Runs native/core/flow.h over the shared flow-control vectors
// (test/vectors/flow-control.json), which test/native/flow-vectors.test.ts
// turns into lines on stdin: `<table> <field>=<value> ...` (booleans as 0/1).
// Prints one line per input: the result, for the test to compare with the
// table's expected value. The js engine checks the same table
// (test/unit/flow-control.test.ts).
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

#include "../core/flow.h"

namespace {

using Fields = std::map<std::string, double>;

double get(const Fields& f, const char* k) {
  auto it = f.find(k);
  if (it == f.end()) {
    std::fprintf(stderr, "missing field %s\n", k);
    std::exit(2);
  }
  return it->second;
}

uint64_t u(const Fields& f, const char* k) { return static_cast<uint64_t>(get(f, k)); }

std::string run(const std::string& table, const Fields& f) {
  using namespace tws::flow;
  char out[128];
  if (table == "autotune") {
    TuneInput in;
    in.epoch_bytes = u(f, "epochBytes");
    in.elapsed_ms = get(f, "elapsedMs");
    in.window = static_cast<uint32_t>(u(f, "window"));
    in.max_window = static_cast<uint32_t>(u(f, "maxWindow"));
    in.starved = get(f, "starved") != 0;
    in.queued_bytes = u(f, "queuedBytes");
    in.base_rtt_ms = get(f, "baseRttMs");
    in.rate_at_growth = get(f, "rateAtGrowth");
    in.room = u(f, "room");
    const TuneResult r = autotune(in);
    std::snprintf(out, sizeof out, "%d %u %.17g", r.end_epoch ? 1 : 0, r.grow, r.rate);
    return out;
  }
  if (table == "windowUpdate") {
    return std::to_string(window_update(u(f, "unreturned"), static_cast<uint32_t>(u(f, "window")), get(f, "finRecv") != 0));
  }
  if (table == "windowRoom") {
    Budget b;
    b.session_outstanding = u(f, "sessionOutstanding");
    b.session_budget = u(f, "sessionBudget");
    b.process_budget = u(f, "processBudget");
    b.process_outstanding = static_cast<int64_t>(get(f, "processOutstanding"));
    b.server = get(f, "server") != 0;
    return std::to_string(window_room(b));
  }
  if (table == "freshWindow") return std::to_string(fresh_window(static_cast<uint32_t>(u(f, "initialWindow")), u(f, "room")));
  if (table == "sessionFull") return session_full(u(f, "sessionOutstanding"), u(f, "processBudget"), get(f, "server") != 0) ? "1" : "0";
  if (table == "processFull") return process_full(static_cast<int64_t>(get(f, "processOutstanding")), u(f, "processBudget")) ? "1" : "0";
  if (table == "starved") return starved(u(f, "granted"), u(f, "recvd"), static_cast<uint32_t>(u(f, "window"))) ? "1" : "0";
  return "unknown table " + table;
}

}  // namespace

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string table, kv;
    in >> table;
    Fields f;
    while (in >> kv) {
      const size_t eq = kv.find('=');
      f[kv.substr(0, eq)] = std::strtod(kv.c_str() + eq + 1, nullptr);
    }
    std::cout << run(table, f) << "\n";
  }
  return 0;
}
