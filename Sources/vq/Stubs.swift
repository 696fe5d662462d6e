// Commands that later releases fill in: optimize (HNSW issue), serve, join (server and
// cluster issues), bench. CommandSpec marks them `built: false`; main.swift reports
// "not built yet" and exits 1, so scripts can tell them from mistakes (exit 2).
