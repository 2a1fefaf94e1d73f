//! Which network addresses JWKS downloads may connect to.
//!
//! A JWKS URL is chosen by a realm administrator, or published by an identity provider, so it
//! must not become a way to make the server fetch from where only the server can reach: the
//! cloud metadata service above all (instance credentials), and, if the operator says so, the
//! host itself and private networks. The check is made on the addresses a name resolves to, and
//! the connection goes to the checked addresses only (see `fetch`), so that a DNS answer that
//! changes between check and connect (rebinding) cannot swap the destination.
//!
//! - Always refused: link-local addresses (`169.254.0.0/16`, `fe80::/10`, where the metadata
//!   services of AWS, Azure, GCP and Oracle answer at 169.254.169.254) and the cloud metadata
//!   addresses outside that range (AWS `fd00:ec2::254`, GCP `fd20:ce::254`, Alibaba
//!   `100.100.100.200`).
//! - With `deny-private-networks`: loopback (`127.0.0.0/8`, `::1`), the unspecified address
//!   (`0.0.0.0/8`, `::`, which reaches the host itself), private networks (`10.0.0.0/8`,
//!   `172.16.0.0/12`, `192.168.0.0/16`, `fc00::/7`) and shared address space (`100.64.0.0/10`).
//! - `denied-addresses`: networks the operator lists.
//!
//! An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is judged as the IPv4 address it carries.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::settings::{DENIED_ADDRESSES_OPTION, DENY_PRIVATE_NETWORKS_OPTION};
use crate::error::{quoted_input, Error, Result};

/// A network in CIDR notation: an address and how many leading bits of it count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Self {
        Network {
            address: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix,
        }
    }

    const fn v6(segments: [u16; 8], prefix: u8) -> Self {
        let [a, b, c, d, e, f, g, h] = segments;
        Network {
            address: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
            prefix,
        }
    }

    /// Parses `ADDRESS/PREFIX` or a lone address (a network of one). The address must be the
    /// network's first one (`10.1.0.0/16`, not `10.1.2.3/16`), so that a typo is not silently
    /// widened or narrowed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| {
            format!(
                "\"{}\" is not an IP address or CIDR network",
                quoted_input(text)
            )
        })?;
        let max = match address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= max)
                .ok_or_else(|| {
                    format!(
                        "\"{}\" has a prefix length outside 0..={max}",
                        quoted_input(text)
                    )
                })?,
        };
        let network = Network { address, prefix };
        if !network.contains(address) || network.first() != address {
            return Err(format!(
                "\"{}\" has host bits set; the network is {}",
                quoted_input(text),
                Network {
                    address: network.first(),
                    prefix
                }
            ));
        }
        Ok(network)
    }

    /// Whether `address` is in this network (IPv4 networks hold IPv4 addresses only).
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }

    fn first(&self) -> IpAddr {
        match self.address {
            IpAddr::V4(address) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(address) & mask))
            }
            IpAddr::V6(address) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(address) & mask))
            }
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// What kind of address a refused one is, as messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    LinkLocal,
    CloudMetadata,
    Loopback,
    Unspecified,
    Private,
    SharedAddressSpace,
}

impl AddressClass {
    fn describe(self) -> &'static str {
        match self {
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::CloudMetadata => "a cloud metadata service address",
            AddressClass::Loopback => "a loopback address",
            AddressClass::Unspecified => "the unspecified address (this host)",
            AddressClass::Private => "a private network address",
            AddressClass::SharedAddressSpace => "a shared (carrier-grade NAT) address",
        }
    }

    /// Refused whatever the options say.
    fn always_refused(self) -> bool {
        matches!(self, AddressClass::LinkLocal | AddressClass::CloudMetadata)
    }
}

/// The ranges and their classes, most specific first (the metadata addresses lie inside ranges
/// of other classes).
const CLASSES: [(Network, AddressClass); 15] = [
    (
        Network::v4(100, 100, 100, 200, 32),
        AddressClass::CloudMetadata,
    ),
    (
        Network::v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128),
        AddressClass::CloudMetadata,
    ),
    (
        Network::v6([0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254], 128),
        AddressClass::CloudMetadata,
    ),
    (Network::v4(169, 254, 0, 0, 16), AddressClass::LinkLocal),
    (
        Network::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        AddressClass::LinkLocal,
    ),
    (Network::v4(127, 0, 0, 0, 8), AddressClass::Loopback),
    (
        Network::v6([0, 0, 0, 0, 0, 0, 0, 1], 128),
        AddressClass::Loopback,
    ),
    (Network::v4(0, 0, 0, 0, 8), AddressClass::Unspecified),
    (Network::v6([0; 8], 128), AddressClass::Unspecified),
    (Network::v4(10, 0, 0, 0, 8), AddressClass::Private),
    (Network::v4(172, 16, 0, 0, 12), AddressClass::Private),
    (Network::v4(192, 168, 0, 0, 16), AddressClass::Private),
    (
        Network::v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        AddressClass::Private,
    ),
    (
        Network::v4(100, 64, 0, 0, 10),
        AddressClass::SharedAddressSpace,
    ),
    // Site-local (deprecated, RFC 3879) is still routed as private by some networks.
    (
        Network::v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        AddressClass::Private,
    ),
];

/// The class of an address, IPv4-mapped IPv6 addresses judged as their IPv4 address; None for
/// an ordinary (public) address.
pub fn classify(address: IpAddr) -> Option<AddressClass> {
    let address = canonical(address);
    CLASSES
        .iter()
        .find(|(network, _)| network.contains(address))
        .map(|(_, class)| *class)
}

/// `::ffff:a.b.c.d` as `a.b.c.d`; every other address as it is.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The operator's address options for JWKS downloads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressPolicy {
    /// Also refuse loopback, unspecified, private and shared addresses.
    pub deny_private_networks: bool,
    /// Networks refused on top of the classes.
    pub denied: Vec<Network>,
}

/// Why an address is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Class(AddressClass),
    Denied(Network),
}

impl AddressPolicy {
    /// Parses `denied-addresses`: networks separated by commas or white space.
    pub fn parse_denied(text: &str) -> Result<Vec<Network>> {
        text.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .map(|part| {
                Network::parse(part)
                    .map_err(|why| Error::invalid_argument(format!("deniedAddresses: {why}")))
            })
            .collect()
    }

    /// None if downloads may connect to `address`, else why not.
    pub fn check(&self, address: IpAddr) -> Option<Refusal> {
        let class = classify(address);
        if let Some(class) = class {
            if class.always_refused() || self.deny_private_networks {
                return Some(Refusal::Class(class));
            }
        }
        let canonical = canonical(address);
        self.denied
            .iter()
            .find(|network| network.contains(canonical) || network.contains(address))
            .map(|network| Refusal::Denied(*network))
    }
}

impl Refusal {
    /// `"169.254.169.254, a link-local address; downloads there are refused (…)"`: what follows
    /// "resolves to" in a message.
    pub fn describe(&self, address: IpAddr) -> String {
        let address = canonical(address);
        match self {
            Refusal::Class(class) if class.always_refused() => format!(
                "{address}, {}; downloads there are refused (always, by the native-lru public key \
                 storage)",
                class.describe()
            ),
            Refusal::Class(class) => format!(
                "{address}, {}; downloads there are refused (option {DENY_PRIVATE_NETWORKS_OPTION})",
                class.describe()
            ),
            Refusal::Denied(network) => format!(
                "{address}, in {network}; downloads there are refused (option \
                 {DENIED_ADDRESSES_OPTION})"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn network(text: &str) -> Network {
        Network::parse(text).unwrap()
    }

    #[test]
    fn link_local_and_metadata_addresses_are_refused_by_default() {
        let policy = AddressPolicy::default();
        for (address, class) in [
            ("169.254.169.254", AddressClass::LinkLocal),
            ("169.254.0.1", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("febf:ffff::1", AddressClass::LinkLocal),
            ("::ffff:169.254.169.254", AddressClass::LinkLocal),
            ("fd00:ec2::254", AddressClass::CloudMetadata),
            ("fd20:ce::254", AddressClass::CloudMetadata),
            ("100.100.100.200", AddressClass::CloudMetadata),
            ("::ffff:100.100.100.200", AddressClass::CloudMetadata),
        ] {
            assert_eq!(
                policy.check(ip(address)),
                Some(Refusal::Class(class)),
                "{address}"
            );
        }
    }

    #[test]
    fn loopback_private_and_public_addresses_are_allowed_by_default() {
        let policy = AddressPolicy::default();
        for address in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "fd12::1",
            "100.64.0.1",
            "0.0.0.0",
            "8.8.8.8",
            "2001:db8::1",
            "169.253.255.255",
            "169.255.0.0",
            "fec0::1",
        ] {
            assert_eq!(policy.check(ip(address)), None, "{address}");
        }
    }

    #[test]
    fn deny_private_networks_also_refuses_this_host_and_private_ranges() {
        let policy = AddressPolicy {
            deny_private_networks: true,
            denied: Vec::new(),
        };
        for (address, class) in [
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.255.254", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("0.0.0.0", AddressClass::Unspecified),
            ("::", AddressClass::Unspecified),
            ("10.0.0.1", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("192.168.0.1", AddressClass::Private),
            ("fc00::1", AddressClass::Private),
            ("fdff::1", AddressClass::Private),
            ("::ffff:10.0.0.1", AddressClass::Private),
            ("100.64.0.1", AddressClass::SharedAddressSpace),
            ("100.127.255.255", AddressClass::SharedAddressSpace),
            ("169.254.169.254", AddressClass::LinkLocal),
        ] {
            assert_eq!(
                policy.check(ip(address)),
                Some(Refusal::Class(class)),
                "{address}"
            );
        }
        for address in [
            "172.32.0.1",
            "172.15.255.255",
            "100.128.0.1",
            "8.8.8.8",
            "2606:4700::1",
        ] {
            assert_eq!(policy.check(ip(address)), None, "{address}");
        }
    }

    #[test]
    fn denied_networks_refuse_their_addresses_in_both_spellings() {
        let policy = AddressPolicy {
            deny_private_networks: false,
            denied: AddressPolicy::parse_denied("127.0.0.77/32, 203.0.113.0/24 2001:db8::/32")
                .unwrap(),
        };
        assert_eq!(
            policy.check(ip("127.0.0.77")),
            Some(Refusal::Denied(network("127.0.0.77/32")))
        );
        assert_eq!(
            policy.check(ip("::ffff:127.0.0.77")),
            Some(Refusal::Denied(network("127.0.0.77/32")))
        );
        assert!(policy.check(ip("203.0.113.200")).is_some());
        assert!(policy.check(ip("2001:db8:1::5")).is_some());
        assert_eq!(policy.check(ip("127.0.0.1")), None);
        assert_eq!(policy.check(ip("127.0.0.78")), None);
        assert_eq!(policy.check(ip("2001:db9::1")), None);
    }

    #[test]
    fn networks_parse_strictly() {
        assert_eq!(network("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(network("10.1.2.3").to_string(), "10.1.2.3/32");
        assert_eq!(network("::1").to_string(), "::1/128");
        assert_eq!(network("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert!(network("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(network("::/0").contains(ip("2001:db8::1")));
        assert!(!network("::/0").contains(ip("8.8.8.8")));
        for bad in [
            "10.1.2.3/8",
            "10.0.0.0/33",
            "fe80::/129",
            "host.example",
            "10.0.0.0/",
            "",
        ] {
            assert!(Network::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Network::parse("10.1.2.3/8").unwrap_err(),
            "\"10.1.2.3/8\" has host bits set; the network is 10.0.0.0/8"
        );
        let error = AddressPolicy::parse_denied("10.0.0.0/8,nonsense").unwrap_err();
        assert!(error.message().starts_with("deniedAddresses: "), "{error}");
        assert_eq!(AddressPolicy::parse_denied(" , ").unwrap(), Vec::new());
    }

    #[test]
    fn refusals_name_the_address_its_class_and_the_option() {
        let policy = AddressPolicy::default();
        let address = ip("::ffff:169.254.169.254");
        let refusal = policy.check(address).unwrap();
        assert_eq!(
            refusal.describe(address),
            "169.254.169.254, a link-local address; downloads there are refused (always, by the \
             native-lru public key storage)"
        );
        let strict = AddressPolicy {
            deny_private_networks: true,
            denied: vec![network("127.0.0.77/32")],
        };
        let loopback = strict.check(ip("127.0.0.1")).unwrap();
        assert!(loopback
            .describe(ip("127.0.0.1"))
            .ends_with("(option --spi-public-key-storage--native-lru--deny-private-networks)"));
        let lax = AddressPolicy {
            deny_private_networks: false,
            denied: vec![network("127.0.0.77/32")],
        };
        assert_eq!(
            lax.check(ip("127.0.0.77"))
                .unwrap()
                .describe(ip("127.0.0.77")),
            "127.0.0.77, in 127.0.0.77/32; downloads there are refused (option \
             --spi-public-key-storage--native-lru--denied-addresses)"
        );
    }
}
