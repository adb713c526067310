//! The same front door as an nginx configuration (`amsplay front --emit nginx`): in
//! production the edge is a CDN or a proxy, and nginx (Debian's package) is the one every
//! operator has. What it keeps of the front door's rules, and what it cannot:
//!
//! - the primary origin first, the others as `backup`; `proxy_next_upstream` moves a request
//!   on an error, a timeout (connect or first byte within the front door's `timeout`) or a
//!   502/503/504, never a non-idempotent one; a failed origin is out for `eject_for`
//!   (`max_fails=1 fail_timeout=…`), after which one request tries it again;
//! - open-source nginx has no active health checks: an origin comes back only when a request
//!   tries it, and each such try of a hung origin costs that request the timeout;
//! - only GET and HEAD reach the origins; CORS preflights are answered by nginx; anything
//!   else 405; `Authorization` and `Cookie` are never forwarded;
//! - a cache (unless disabled): `proxy_cache` with a lock (one request per object reaches
//!   the origin while the rest wait for it) and stale answers while origins fail; the
//!   origins' `Cache-Control` sets the lifetime;
//! - with no origin able to answer: 503 with `Retry-After`, as from the front door.

use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;

/// What the configuration is made from.
#[derive(Debug, Clone)]
pub struct NginxEdge {
    /// Origins in priority order (same scheme, no path).
    pub origins: Vec<url::Url>,
    /// `host:port` nginx listens on.
    pub listen: String,
    /// Connect and first-byte wait before the next origin is asked.
    pub timeout: Duration,
    /// How long a failed origin stays out.
    pub eject_for: Duration,
    /// Folder for nginx's pid file, temporary files and cache.
    pub dir: PathBuf,
    /// Whether to cache.
    pub cache: bool,
}

impl NginxEdge {
    /// The whole `nginx.conf`, for `nginx -c FILE`.
    pub fn render(&self) -> anyhow::Result<String> {
        anyhow::ensure!(
            !self.origins.is_empty(),
            "the edge needs at least one --origin"
        );
        let scheme = self.origins[0].scheme();
        let mut servers = String::new();
        for (i, o) in self.origins.iter().enumerate() {
            anyhow::ensure!(
                o.scheme() == scheme,
                "origins must share one scheme for nginx ({o} is not {scheme})"
            );
            anyhow::ensure!(
                o.path() == "/" && o.query().is_none(),
                "an origin for nginx is scheme://host:port, without a path ({o})"
            );
            let host = o
                .host_str()
                .ok_or_else(|| anyhow::anyhow!("origin {o} has no host"))?;
            let port = o
                .port_or_known_default()
                .ok_or_else(|| anyhow::anyhow!("origin {o} has no port"))?;
            let role = if i == 0 { "" } else { " backup" };
            writeln!(
                servers,
                "        server {host}:{port} max_fails=1 fail_timeout={}{role};",
                secs(self.eject_for)
            )?;
        }
        anyhow::ensure!(
            !self.listen.ends_with(":0"),
            "nginx needs a fixed port to listen on: --listen 0.0.0.0:8080"
        );
        let dir = self.dir.display();
        let timeout = millis(self.timeout);
        let cache_path = if self.cache {
            format!(
                "    proxy_cache_path {dir}/cache levels=1:2 keys_zone=amsplay:10m max_size=1g inactive=1h use_temp_path=off;\n"
            )
        } else {
            String::new()
        };
        let cache = if self.cache {
            "            # One request per object reaches the origins; the rest wait for it.
            proxy_cache amsplay;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 10s;
            proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
            proxy_cache_background_update on;
            add_header x-cache $upstream_cache_status always;
"
        } else {
            "            # No cache: every request reaches an origin (as in drills).
"
        };
        let tls = if scheme == "https" {
            "            proxy_ssl_server_name on;\n"
        } else {
            ""
        };
        Ok(format!(
            r#"# amsplay's streaming edge for nginx, made by `amsplay front --emit nginx`.
# Run: nginx -c THIS_FILE   (or include its http block's parts in your own configuration)
pid {dir}/nginx.pid;
worker_processes auto;
error_log stderr warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
{cache_path}
    # The primary origin first; the others only while it is out.
    upstream amsplay_origins {{
{servers}        keepalive 64;
    }}

    server {{
        listen {listen};
        client_header_timeout 10s;
        keepalive_timeout 10s;
        client_max_body_size 0;

        location / {{
            # CORS preflights are answered here, never forwarded.
            if ($request_method = OPTIONS) {{
                add_header access-control-allow-origin "*" always;
                add_header access-control-allow-methods "GET, HEAD, OPTIONS" always;
                add_header access-control-allow-headers $http_access_control_request_headers always;
                add_header access-control-max-age 86400 always;
                return 204;
            }}
            if ($request_method !~ ^(GET|HEAD)$) {{
                return 405;
            }}
            proxy_pass {scheme}://amsplay_origins;
{tls}            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Credentials meant for one datacenter never reach another.
            proxy_set_header Authorization "";
            proxy_set_header Cookie "";
            proxy_connect_timeout {timeout};
            proxy_read_timeout {timeout};
            proxy_send_timeout {timeout};
            # Errors, timeouts and 502/503/504 move a request to the next origin (never a
            # non-idempotent one: `non_idempotent` is not listed).
            proxy_next_upstream error timeout http_502 http_503 http_504;
            proxy_next_upstream_tries {tries};
{cache}            add_header x-served-by $upstream_addr always;
            error_page 502 504 = @unavailable;
        }}

        # No origin could answer: a fast 503 players retry, as from amsplay's front door.
        location @unavailable {{
            add_header retry-after 1 always;
            add_header access-control-allow-origin "*" always;
            add_header cache-control no-store always;
            return 503 "no origin could answer; retry shortly\n";
        }}
    }}
}}
"#,
            listen = self.listen,
            tries = self.origins.len(),
        ))
    }
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(origins: &[&str]) -> NginxEdge {
        NginxEdge {
            origins: origins
                .iter()
                .map(|o| url::Url::parse(o).unwrap())
                .collect(),
            listen: "127.0.0.1:8080".into(),
            timeout: Duration::from_millis(1500),
            eject_for: Duration::from_secs(3),
            dir: "/var/cache/amsplay-nginx".into(),
            cache: true,
        }
    }

    #[test]
    fn the_second_origin_is_a_backup_and_failures_move_requests() {
        let conf = edge(&["http://a:7001", "http://b:7002"]).render().unwrap();
        assert!(conf.contains("server a:7001 max_fails=1 fail_timeout=3s;"));
        assert!(conf.contains("server b:7002 max_fails=1 fail_timeout=3s backup;"));
        assert!(conf.contains("proxy_next_upstream error timeout http_502 http_503 http_504;"));
        assert!(!conf.contains("non_idempotent;"));
        assert!(conf.contains("proxy_read_timeout 1500ms;"));
        assert!(conf.contains("proxy_cache_lock on;"));
    }

    #[test]
    fn the_shipped_example_is_what_emit_writes() {
        // Regenerate with `make deploy-configs` after changing the template.
        let example = NginxEdge {
            origins: [
                "http://dc-a.example.net:8080",
                "http://dc-b.example.net:8080",
            ]
            .map(|o| url::Url::parse(o).unwrap())
            .to_vec(),
            listen: "0.0.0.0:80".into(),
            timeout: Duration::from_millis(2000),
            eject_for: Duration::from_secs(3),
            dir: "/var/cache/amsplay-nginx".into(),
            cache: true,
        };
        let shipped = include_str!("../../deploy/nginx/amsplay.conf");
        assert_eq!(
            shipped,
            example.render().unwrap(),
            "deploy/nginx/amsplay.conf is stale: run `make deploy-configs`"
        );
    }

    #[test]
    fn what_nginx_cannot_express_is_refused() {
        assert!(edge(&["http://a:1", "https://b:2"]).render().is_err());
        assert!(edge(&["http://a:1/streams"]).render().is_err());
        let mut e = edge(&["http://a:1"]);
        e.listen = "127.0.0.1:0".into();
        assert!(e.render().unwrap_err().to_string().contains("fixed port"));
    }
}
