"""Print the request counts each benchmark's last round made, read from the simulators."""


def pytest_terminal_summary(terminalreporter):
    from bench.test_bench_m365 import COUNTS
    if not COUNTS:
        return
    keys = ("graph_requests", "graph_writes", "graph_token_requests", "wsman_requests", "psrp_pool_opens")
    terminalreporter.write_sep("-", "requests per run (counted by the simulators)")
    terminalreporter.write_line(f"{'benchmark':<32}" + "".join(f"{k:>22}" for k in keys))
    for name, m in sorted(COUNTS.items()):
        terminalreporter.write_line(f"{name:<32}" + "".join(f"{m.get(k, 0):>22}" for k in keys))
