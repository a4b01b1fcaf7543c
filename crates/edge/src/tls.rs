//! The world's own certificate authority (rcgen) and the TLS settings of
//! servers that terminate TLS (rustls, ring provider).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::EdgeError;

/// The CA's common name, shown as the trust anchor in traces.
pub const CA_NAME: &str = "weblab local CA";

/// The crypto provider every weblab TLS endpoint uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A CA kept in the data directory, created on first use.
pub struct LocalCa {
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn ca_params() -> Result<CertificateParams, EdgeError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(EdgeError::setup)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    dn.push(DnType::OrganizationName, "weblab");
    p.distinguished_name = dn;
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

impl LocalCa {
    /// Where the CA certificate lives (give this to `curl --cacert`).
    pub fn cert_path(dir: &Path) -> PathBuf {
        dir.join("ca.pem")
    }

    fn key_path(dir: &Path) -> PathBuf {
        dir.join("ca-key.pem")
    }

    /// Loads the CA from `dir`, or creates and stores a new one.
    pub fn load_or_create(dir: &Path) -> Result<LocalCa, EdgeError> {
        let (cert_path, key_path) = (Self::cert_path(dir), Self::key_path(dir));
        let ctx = |p: &Path, e: std::io::Error| EdgeError::setup(format!("{}: {e}", p.display()));
        if cert_path.exists() && key_path.exists() {
            // A key written by an older weblab may be readable by others.
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = fs::metadata(&key_path)
                && meta.permissions().mode() & 0o077 != 0
            {
                let _ = fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600));
            }
            let key_pem = fs::read_to_string(&key_path).map_err(|e| ctx(&key_path, e))?;
            let cert_pem = fs::read(&cert_path).map_err(|e| ctx(&cert_path, e))?;
            let key = KeyPair::from_pem(&key_pem)
                .map_err(|e| EdgeError::setup(format!("{}: {e}", key_path.display())))?;
            let cert_der = CertificateDer::from_pem_slice(&cert_pem)
                .map_err(|e| EdgeError::setup(format!("{}: {e}", cert_path.display())))?;
            // The issuer is rebuilt from the same parameters; its name must
            // equal the stored certificate's subject, which it does because
            // both come from `ca_params`.
            let issuer = Issuer::new(ca_params()?, key);
            return Ok(LocalCa { cert_der, issuer });
        }
        fs::create_dir_all(dir).map_err(|e| ctx(dir, e))?;
        let key = KeyPair::generate().map_err(EdgeError::setup)?;
        let params = ca_params()?;
        let cert = params.self_signed(&key).map_err(EdgeError::setup)?;
        // Write to temporary names and rename, so a concurrent reader never
        // sees half a file.
        let tmp_key = dir.join(format!(".ca-key.{}.tmp", std::process::id()));
        let tmp_cert = dir.join(format!(".ca.{}.tmp", std::process::id()));
        // The CA's private key can sign for any name: only its owner may
        // read it (created 0600, never world-readable even for a moment).
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp_key)
                .map_err(|e| ctx(&tmp_key, e))?;
            f.write_all(key.serialize_pem().as_bytes())
                .map_err(|e| ctx(&tmp_key, e))?;
        }
        fs::write(&tmp_cert, cert.pem()).map_err(|e| ctx(&tmp_cert, e))?;
        fs::rename(&tmp_key, &key_path).map_err(|e| ctx(&key_path, e))?;
        fs::rename(&tmp_cert, &cert_path).map_err(|e| ctx(&cert_path, e))?;
        Ok(LocalCa {
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate (DER).
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses).
    /// Returns the chain (leaf, then the CA) and the leaf's key.
    pub fn issue(
        &self,
        names: &[String],
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), EdgeError> {
        self.issue_valid(names, None)
    }

    /// A certificate valid only between two dates (year, month, day):
    /// an expired one, for a browser's certificate check to refuse.
    pub fn issue_between(
        &self,
        names: &[String],
        from: Ymd,
        to: Ymd,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), EdgeError> {
        self.issue_valid(names, Some((from, to)))
    }

    fn issue_valid(
        &self,
        names: &[String],
        between: Option<(Ymd, Ymd)>,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), EdgeError> {
        let mut params = CertificateParams::new(names.to_vec()).map_err(EdgeError::setup)?;
        if let Some(((y0, m0, d0), (y1, m1, d1))) = between {
            params.not_before = rcgen::date_time_ymd(y0, m0, d0);
            params.not_after = rcgen::date_time_ymd(y1, m1, d1);
        }
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.distinguished_name = dn;
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(EdgeError::setup)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(EdgeError::setup)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((vec![cert.der().clone(), self.cert_der.clone()], key))
    }
}

/// A calendar day: year, month, day.
pub type Ymd = (i32, u8, u8);

/// A TLS 1.2/1.3 server configuration offering `alpn` in order.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, EdgeError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(EdgeError::setup)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(EdgeError::setup)?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_ca_signs_certificates_that_verify_against_its_file() {
        let dir = std::env::temp_dir().join(format!("weblab-ca-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let first = LocalCa::load_or_create(&dir).unwrap();
        let again = LocalCa::load_or_create(&dir).unwrap();
        assert_eq!(first.cert(), again.cert(), "the CA is kept, not re-made");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join("ca-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the CA key is readable by its owner only"
        );
        // A leaf issued by the reloaded CA verifies against the stored cert.
        let (chain, _key) = again.issue(&["myapp.test".into()]).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(first.cert().clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        use rustls::client::danger::ServerCertVerifier;
        let name = rustls_pki_types::ServerName::try_from("myapp.test").unwrap();
        verifier
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &name,
                &[],
                rustls_pki_types::UnixTime::now(),
            )
            .unwrap();
        let wrong = rustls_pki_types::ServerName::try_from("other.test").unwrap();
        assert!(
            verifier
                .verify_server_cert(
                    &chain[0],
                    &chain[1..],
                    &wrong,
                    &[],
                    rustls_pki_types::UnixTime::now()
                )
                .is_err()
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
