//! The proxy variables of the environment, as both HTTP clients read them: reqwest's (JWKS
//! downloads) and the AWS SDK's (KMS calls through a proxy).

/// The variables naming a proxy, in the order reqwest reads them (`NO_PROXY` only exempts hosts).
pub(crate) const PROXY_VARIABLES: [&str; 6] = [
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
];

/// Whether any of them is set to something.
pub(crate) fn proxy_configured() -> bool {
    PROXY_VARIABLES
        .iter()
        .any(|variable| std::env::var_os(variable).is_some_and(|value| !value.is_empty()))
}
