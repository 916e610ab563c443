//! Where clients reach the simulator. Upstash's REST URL is `https://<endpoint>`
//! on port 443; the simulator listens on its own port, so it reports the URL
//! of its data plane in each database's `rest_url` (docs/upstash-api.md §16.5).

use std::net::{IpAddr, SocketAddr};

/// The host clients use: `--advertise-host` when given (a host name or an IP
/// address), else the listen IP, which must then be a specific address.
pub fn advertised_host(given: Option<&str>, listen: SocketAddr) -> Result<String, String> {
    let Some(host) = given else {
        if listen.ip().is_unspecified() {
            return Err(format!(
                "--listen {listen} accepts connections on every address, so it cannot say which one clients \
                 use: pass --advertise-host with the host name or IP address they reach the simulator at \
                 (it becomes each database's rest_url)"
            ));
        }
        return Ok(url_host(listen.ip()));
    };
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(url_host(ip));
    }
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if name_ok {
        Ok(host.to_ascii_lowercase())
    } else {
        Err(format!(
            "--advertise-host {host:?}: expected a host name or an IP address, without scheme or port"
        ))
    }
}

/// An IP address as the host part of a URL (IPv6 in brackets).
fn url_host(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The base URL of the data plane (and of the whole simulator).
pub fn rest_url(tls: bool, host: &str, port: u16) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn defaults_to_the_listen_ip() {
        assert_eq!(advertised_host(None, listen("127.0.0.1:8910")), Ok("127.0.0.1".into()));
        assert_eq!(advertised_host(None, listen("[::1]:8910")), Ok("[::1]".into()));
        assert_eq!(advertised_host(None, listen("10.88.0.1:0")), Ok("10.88.0.1".into()));
    }

    #[test]
    fn an_unspecified_listen_address_needs_one() {
        for any in ["0.0.0.0:8910", "[::]:8910"] {
            let err = advertised_host(None, listen(any)).expect_err("ambiguous");
            assert!(err.contains("--advertise-host"), "{err}");
        }
        assert_eq!(advertised_host(Some("10.88.0.1"), listen("0.0.0.0:1")), Ok("10.88.0.1".into()));
    }

    #[test]
    fn accepts_names_and_addresses_only() {
        let any = listen("0.0.0.0:1");
        assert_eq!(advertised_host(Some("Sim.Example.test"), any), Ok("sim.example.test".into()));
        assert_eq!(advertised_host(Some("::1"), any), Ok("[::1]".into()));
        assert_eq!(advertised_host(Some("[fd00::5]"), any), Ok("[fd00::5]".into()));
        for bad in ["", "https://sim", "sim:443", "a..b", "-sim", "sim/x", "white space"] {
            assert!(advertised_host(Some(bad), any).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn urls_carry_scheme_and_port() {
        assert_eq!(rest_url(true, "10.88.0.1", 8443), "https://10.88.0.1:8443");
        assert_eq!(rest_url(false, "[::1]", 80), "http://[::1]:80");
    }
}
