//! Which URLs a webhook may target. HTTPS only unless `webhooks.allow_http`;
//! never a loopback, private, link-local, metadata or otherwise special address
//! unless the settings allow loopback (tests) or private networks. Checked when
//! an endpoint is added (`kycctl webhook add`) and on every connection: the
//! dispatcher's HTTP client resolves names through [`GuardedResolver`], which
//! refuses a name whose addresses include a forbidden one, so a name that
//! resolves elsewhere later (DNS rebinding) is refused then.

use kyc_config::settings::Webhooks;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What the settings allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// `http://` URLs.
    pub allow_http: bool,
    /// Loopback targets.
    pub allow_loopback: bool,
    /// Private, shared and unique-local targets.
    pub allow_private: bool,
}

impl Policy {
    /// The policy of the `[webhooks]` settings.
    pub fn from_settings(settings: &Webhooks) -> Policy {
        Policy {
            allow_http: settings.allow_http,
            allow_loopback: settings.allow_loopback,
            allow_private: settings.allow_private,
        }
    }

    /// `Ok` if the dispatcher may connect to `ip`; otherwise what kind of
    /// address it is.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let kind = match ip {
            IpAddr::V4(v4) => kind_v4(v4),
            IpAddr::V6(v6) => kind_v6(v6),
        };
        match kind {
            Kind::Public => Ok(()),
            Kind::Loopback if self.allow_loopback => Ok(()),
            Kind::Private if self.allow_private => Ok(()),
            Kind::Loopback => Err(Refused::Address(ip, "loopback")),
            Kind::Private => Err(Refused::Address(ip, "private")),
            Kind::LinkLocal => Err(Refused::Address(ip, "link-local or metadata")),
            Kind::Special => Err(Refused::Address(ip, "reserved")),
        }
    }

    /// The URL, if its scheme is allowed and its host is not an address the
    /// policy refuses (names are checked when they are resolved).
    pub fn check_url(&self, url: &str) -> Result<Url, Refused> {
        let parsed = Url::parse(url).map_err(|_| Refused::Url)?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            _ => return Err(Refused::Scheme),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Refused::Credentials);
        }
        match parsed.host() {
            None => return Err(Refused::Url),
            Some(url::Host::Ipv4(v4)) => self.check_ip(IpAddr::V4(v4))?,
            Some(url::Host::Ipv6(v6)) => self.check_ip(IpAddr::V6(v6))?,
            Some(url::Host::Domain(name)) => {
                // Well-known names of metadata services and of this machine.
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "metadata.google.internal" || name == "metadata" {
                    return Err(Refused::Address(
                        IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
                        "link-local or metadata",
                    ));
                }
                if (name == "localhost" || name.ends_with(".localhost")) && !self.allow_loopback {
                    return Err(Refused::Address(
                        IpAddr::V4(Ipv4Addr::LOCALHOST),
                        "loopback",
                    ));
                }
            }
        }
        Ok(parsed)
    }
}

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not an absolute URL with a host.
    #[error("not an absolute http(s) URL with a host")]
    Url,
    /// Not HTTPS (and plain HTTP is not allowed).
    #[error("only https:// URLs are allowed (webhooks.allow_http is off)")]
    Scheme,
    /// User and password in the URL.
    #[error("a webhook URL may not carry a user name or password")]
    Credentials,
    /// The host is, or resolves to, an address of this kind.
    #[error("{0} is a {1} address, which webhooks may not target")]
    Address(IpAddr, &'static str),
}

enum Kind {
    Public,
    Loopback,
    Private,
    LinkLocal,
    Special,
}

fn kind_v4(ip: Ipv4Addr) -> Kind {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Kind::Loopback
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        // RFC 1918 and the shared (CGNAT) range 100.64.0.0/10.
        Kind::Private
    } else if ip.is_link_local() {
        // 169.254.0.0/16, with the metadata address 169.254.169.254.
        Kind::LinkLocal
    } else if ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (b == 18 || b == 19))
    {
        Kind::Special
    } else {
        Kind::Public
    }
}

fn kind_v6(ip: Ipv6Addr) -> Kind {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Kind::Loopback
    } else if first & 0xfe00 == 0xfc00 {
        // Unique local fc00::/7, with AWS's metadata address fd00:ec2::254.
        if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
            Kind::LinkLocal
        } else {
            Kind::Private
        }
    } else if first & 0xffc0 == 0xfe80 {
        Kind::LinkLocal
    } else if ip.is_unspecified()
        || ip.is_multicast()
        || first == 0x2001 && ip.segments()[1] == 0xdb8
    {
        Kind::Special
    } else {
        Kind::Public
    }
}

/// The system resolver, refusing any name with an address the policy refuses.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver(pub Policy);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for addr in &addrs {
                policy.check_ip(addr.ip())?;
            }
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no address").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_only_unless_allowed() {
        let strict = Policy::default();
        assert_eq!(
            strict.check_url("http://example.com/hook"),
            Err(Refused::Scheme)
        );
        assert!(strict.check_url("https://example.com/hook").is_ok());
        assert_eq!(strict.check_url("ftp://example.com/"), Err(Refused::Scheme));
        let lax = Policy {
            allow_http: true,
            ..Policy::default()
        };
        assert!(lax.check_url("http://example.com/hook").is_ok());
    }

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        let strict = Policy::default();
        for url in [
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://localhost:8443/",
            "https://10.1.2.3/",
            "https://192.168.0.1/",
            "https://172.16.0.1/",
            "https://100.64.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://[fd00:ec2::254]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://0.0.0.0/",
            "https://metadata.google.internal/",
        ] {
            assert!(
                matches!(strict.check_url(url), Err(Refused::Address(..))),
                "{url}"
            );
        }
        let tests = Policy {
            allow_http: true,
            allow_loopback: true,
            allow_private: false,
        };
        assert!(tests.check_url("http://127.0.0.1:9000/").is_ok());
        assert!(tests.check_url("http://10.0.0.1/").is_err());
        let all = Policy {
            allow_http: true,
            allow_loopback: true,
            allow_private: true,
        };
        assert!(all.check_url("http://10.0.0.1/").is_ok());
        assert!(
            all.check_url("http://169.254.169.254/").is_err(),
            "metadata never"
        );
        assert_eq!(
            strict.check_url("https://u:p@example.com/"),
            Err(Refused::Credentials)
        );
    }
}
