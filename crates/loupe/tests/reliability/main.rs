//! Issue 19's reliability suite, on the real `loupe` binary (the harness of
//! `tests/api/`): what an attacker or a careless operator would try on a
//! default `loupe serve`.
//!
//! Run with `cargo nextest run --release -p loupe --test reliability`
//! (`--no-capture` prints the measured SIGTERM exit times).
//!
//! - `cross_site`: cross-site writes (text/plain, forms, foreign origins) and
//!   DNS-rebinding `Host` values are refused and write nothing; configured
//!   origins get CORS, others none; the real clients still get through.
//!   The same attempts from a page in headless Chromium are in
//!   `ui/tests/csrf.test.mjs`.
//! - `shutdown`: SIGTERM with an open event stream, a client stuck in its
//!   headers, a client trickling a body, exits within 5 s, and every
//!   acknowledged point is there after a restart; slow clients are cut by
//!   the read timeouts; the connection cap refuses the excess with a log
//!   line; the server's own 400/414/431 answers have the JSON error shape.
//! - `rate`: `--rate-limit` gives each token its own request rate; past
//!   it, 429 with `Retry-After`, counted in `/metrics`.
//! - `tls`: `--tls-cert/--tls-key` serve HTTPS to a client that trusts the
//!   certificate, and nothing to one that does not or that speaks plain
//!   HTTP; SIGTERM with an open TLS connection still exits within 5 s.
//! - `limits`: series per run and per project (a batch past a limit is
//!   refused whole, existing series still take points, counts survive a
//!   restart, racing batches never pass it); the in-flight body budget
//!   (bodies wait, then get 503 with `Retry-After`; the high-water mark of
//!   admitted bytes stays within the budget; slow clients hold only what
//!   they sent; compressed bodies are charged decompressed, a bomb stops
//!   at 413); `--request-timeout` (503 `request_timeout`, the live stream
//!   exempt); series listings page every series exactly once; RSS returns
//!   near idle after a burst of large bodies.
//! - `systemd_unit`: the unit in `docs/deployment.md`, taken from the doc,
//!   passes `systemd-analyze verify`; run as the unit runs it (under a real
//!   `systemd --user` where one can run), it stops within 5 s with streams,
//!   a stuck client and a writer, and keeps everything acknowledged.

#[path = "../api/support.rs"]
mod support;

mod raw;

mod connections;
mod cross_site;
mod limits;
mod rate;
mod shutdown;
mod systemd_unit;
mod tls;
