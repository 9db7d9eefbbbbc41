//! The device identity clawbridge presents in `connect`: an Ed25519 key (a
//! PKCS#8 PEM file, generated into the state dir on first start, or a
//! mounted Secret), its device id, the payload the gateway verifies and its
//! signature, and the device token the gateway issues after pairing. The
//! payload and id functions are pure; file IO is in [`DeviceAuth`] and
//! [`write_private`] only. No key or token ever reaches a log or an error.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{DeviceSettings, Secret};

/// The key file written on first start, inside the state dir.
pub const KEY_FILE: &str = "device-key.pem";
/// The device token the gateway issued (`hello-ok.auth.deviceToken`).
pub const TOKEN_FILE: &str = "device-token.json";
/// Largest key or token file read (a PEM key is ~120 bytes).
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Why the identity could not be loaded or stored. Names paths, never contents.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{}: {what}: {source}", path.display())]
    Io { path: PathBuf, what: &'static str, source: io::Error },
    #[error("{}: not an Ed25519 private key in PKCS#8 PEM (\"-----BEGIN PRIVATE KEY-----\"; `openssl genpkey -algorithm ed25519` writes one)", path.display())]
    BadKey { path: PathBuf },
    #[error("{}: larger than {MAX_FILE_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("no random source for a new key: {0}")]
    Random(String),
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> DeviceError + 'a {
    move |source| DeviceError::Io { path: path.to_owned(), what, source }
}

/// The key pair and what is derived from it.
pub struct Identity {
    key: SigningKey,
    device_id: String,
    public_key: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("device_id", &self.device_id).finish_non_exhaustive()
    }
}

/// The device id: hex SHA-256 of the raw 32-byte public key
/// (`deriveDeviceIdFromPublicKey`).
pub fn device_id(public_key: &[u8; 32]) -> String {
    let digest = Sha256::digest(public_key);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// `normalizeDeviceMetadataForAuth`: trimmed, ASCII upper case lowered.
fn normalize_meta(value: &str) -> String {
    value.trim().to_ascii_lowercase()
}

/// What the v3 payload binds besides the device id.
#[derive(Debug, Clone, Copy)]
pub struct Claims<'a> {
    pub client_id: &'a str,
    pub client_mode: &'a str,
    pub role: &'a str,
    pub scopes: &'a [&'a str],
    pub signed_at_ms: u64,
    /// `auth.token ?? auth.deviceToken ?? auth.bootstrapToken ?? ""`.
    pub token: &'a str,
    pub nonce: &'a str,
    pub platform: &'a str,
    pub device_family: &'a str,
}

/// `buildDeviceAuthPayloadV3`:
/// `v3|deviceId|clientId|clientMode|role|scopes,|signedAtMs|token|nonce|platform|deviceFamily`.
pub fn payload_v3(device_id: &str, c: &Claims<'_>) -> String {
    [
        "v3",
        device_id,
        c.client_id,
        c.client_mode,
        c.role,
        &c.scopes.join(","),
        &c.signed_at_ms.to_string(),
        c.token,
        c.nonce,
        &normalize_meta(c.platform),
        &normalize_meta(c.device_family),
    ]
    .join("|")
}

/// The `device` block of `connect` (`{id, publicKey, signature, signedAt, nonce}`).
#[derive(Debug, Clone, Serialize)]
pub struct Proof {
    pub id: String,
    #[serde(rename = "publicKey")]
    pub public_key: String,
    pub signature: String,
    #[serde(rename = "signedAt")]
    pub signed_at: u64,
    pub nonce: String,
}

impl Identity {
    pub fn from_key(key: SigningKey) -> Self {
        let public = key.verifying_key().to_bytes();
        Identity { device_id: device_id(&public), public_key: URL_SAFE_NO_PAD.encode(public), key }
    }

    /// Parses a PKCS#8 PEM Ed25519 private key.
    pub fn from_pem(pem: &str) -> Option<Self> {
        SigningKey::from_pkcs8_pem(pem.trim()).ok().map(Self::from_key)
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Raw public key, base64url without padding.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Ed25519 over the UTF-8 payload, base64url without padding.
    pub fn sign(&self, payload: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.key.sign(payload.as_bytes()).to_bytes())
    }

    /// The signed `device` block for these claims.
    pub fn prove(&self, c: &Claims<'_>) -> Proof {
        Proof {
            id: self.device_id.clone(),
            public_key: self.public_key.clone(),
            signature: self.sign(&payload_v3(&self.device_id, c)),
            signed_at: c.signed_at_ms,
            nonce: c.nonce.to_owned(),
        }
    }

    fn to_pem(&self) -> Option<zeroize::Zeroizing<String>> {
        self.key.to_pkcs8_pem(Default::default()).ok()
    }
}

/// The device token file's shape; bound to the device it was issued to.
#[derive(Serialize, Deserialize)]
struct StoredToken {
    #[serde(rename = "deviceId")]
    device_id: String,
    role: String,
    token: String,
}

/// The identity plus the device-token store, shared by every link.
pub struct DeviceAuth {
    identity: Identity,
    token_path: PathBuf,
    token: Mutex<Option<Secret>>,
}

impl std::fmt::Debug for DeviceAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuth").field("device_id", &self.identity.device_id).finish_non_exhaustive()
    }
}

impl DeviceAuth {
    /// Loads the key (the override file, else the state dir's, generating it
    /// on first start) and the stored device token. The state dir must be
    /// writable: the token lives there.
    pub fn open(s: &DeviceSettings) -> Result<Self, DeviceError> {
        ensure_dir(&s.state_dir)?;
        probe_writable(&s.state_dir)?;
        let identity = match &s.key_file {
            Some(path) => load_key(path)?,
            None => load_or_create_key(&s.state_dir.join(KEY_FILE))?,
        };
        let token_path = s.state_dir.join(TOKEN_FILE);
        let token = read_token(&token_path, identity.device_id())?;
        Ok(DeviceAuth { identity, token_path, token: Mutex::new(token) })
    }

    /// What `--check` verifies without creating a key: the state dir can be
    /// created and written, and an override key file parses.
    pub fn check(s: &DeviceSettings) -> Result<Option<String>, DeviceError> {
        ensure_dir(&s.state_dir)?;
        probe_writable(&s.state_dir)?;
        let path = s.key_file.clone().unwrap_or_else(|| s.state_dir.join(KEY_FILE));
        match fs::metadata(&path) {
            Ok(_) => Ok(Some(load_key(&path)?.device_id.clone())),
            Err(e) if e.kind() == io::ErrorKind::NotFound && s.key_file.is_none() => Ok(None),
            Err(e) => Err(io_err(&path, "read the device key")(e)),
        }
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The stored device token, if the gateway issued one.
    pub fn token(&self) -> Option<Secret> {
        self.token.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Keeps a token from `hello-ok` (a new one, or a rotated one). Returns
    /// whether it changed. The file is replaced atomically.
    pub fn store_token(&self, token: &str) -> Result<bool, DeviceError> {
        let mut cur = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if cur.as_ref().is_some_and(|t| t.matches(token.as_bytes())) {
            return Ok(false);
        }
        let stored = StoredToken {
            device_id: self.identity.device_id.clone(),
            role: "operator".into(),
            token: token.to_owned(),
        };
        let json = zeroize::Zeroizing::new(serde_json::to_vec(&stored).expect("strings only"));
        write_private(&self.token_path, &json)?;
        *cur = Some(Secret::new(token.to_owned()));
        Ok(true)
    }

    /// Forgets a token the gateway no longer accepts (revoked device).
    pub fn clear_token(&self) -> Result<(), DeviceError> {
        let mut cur = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if cur.take().is_some() {
            match fs::remove_file(&self.token_path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&self.token_path, "remove the device token")(e)),
            }
        }
        Ok(())
    }
}

fn ensure_dir(dir: &Path) -> Result<(), DeviceError> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir, "create the state dir (CLAWBRIDGE_STATE_DIR)"))?;
    }
    Ok(())
}

/// Writes and removes a probe file: fails now, not at the first pairing.
fn probe_writable(dir: &Path) -> Result<(), DeviceError> {
    let probe = dir.join(format!(".clawbridge-probe-{}", std::process::id()));
    write_private(&probe, b"").map_err(|e| match e {
        DeviceError::Io { source, .. } => DeviceError::Io {
            path: dir.to_owned(),
            what: "the state dir (CLAWBRIDGE_STATE_DIR) is not writable",
            source,
        },
        e => e,
    })?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

fn read_bounded(path: &Path, what: &'static str) -> Result<zeroize::Zeroizing<String>, DeviceError> {
    let meta = fs::metadata(path).map_err(io_err(path, what))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(DeviceError::TooLarge { path: path.to_owned() });
    }
    Ok(zeroize::Zeroizing::new(fs::read_to_string(path).map_err(io_err(path, what))?))
}

fn load_key(path: &Path) -> Result<Identity, DeviceError> {
    let pem = read_bounded(path, "read the device key")?;
    Identity::from_pem(&pem).ok_or_else(|| DeviceError::BadKey { path: path.to_owned() })
}

/// Loads the key, or generates one and publishes it with a hard link, so
/// that two processes starting at once end up with the same key.
fn load_or_create_key(path: &Path) -> Result<Identity, DeviceError> {
    match fs::metadata(path) {
        Ok(_) => return load_key(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path, "read the device key")(e)),
    }
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::getrandom(seed.as_mut()).map_err(|e| DeviceError::Random(e.to_string()))?;
    let identity = Identity::from_key(SigningKey::from_bytes(&seed));
    let pem = identity.to_pem().ok_or_else(|| DeviceError::BadKey { path: path.to_owned() })?;
    let tmp = temp_path(path);
    write_synced(&tmp, pem.as_bytes())?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(path)?;
            tracing::info!(path = %path.display(), device_id = identity.device_id(), "generated a new device key");
            Ok(identity)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load_key(path),
        Err(e) => Err(io_err(path, "store the device key")(e)),
    }
}

fn read_token(path: &Path, device_id: &str) -> Result<Option<Secret>, DeviceError> {
    let text = match read_bounded(path, "read the device token") {
        Ok(t) => t,
        Err(DeviceError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match serde_json::from_str::<StoredToken>(&text) {
        Ok(t) if t.device_id == device_id && !t.token.is_empty() => Ok(Some(Secret::new(t.token))),
        // Another key's token, or unreadable: the gateway issues a new one.
        _ => {
            tracing::warn!(path = %path.display(), "ignoring a device token file that is not for this device key");
            Ok(None)
        }
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{}.tmp", std::process::id(), uuid::Uuid::new_v4().simple()))
}

/// A new file, mode 0600, written and fsynced.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), DeviceError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path, "create a file in the state dir"))?;
    // The mode passed to open() is masked by the umask; make it exact.
    f.set_permissions(fs::Permissions::from_mode(0o600)).map_err(io_err(path, "chmod 600"))?;
    f.write_all(bytes).map_err(io_err(path, "write"))?;
    f.sync_all().map_err(io_err(path, "fsync"))
}

fn sync_dir(path: &Path) -> Result<(), DeviceError> {
    if let Some(dir) = path.parent() {
        let d = fs::File::open(dir).map_err(io_err(dir, "open the state dir"))?;
        d.sync_all().map_err(io_err(dir, "fsync the state dir"))?;
    }
    Ok(())
}

/// Replaces `path` atomically: temp file (0600) + fsync + rename + dir fsync.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DeviceError> {
    let tmp = temp_path(path);
    if let Err(e) = write_synced(&tmp, bytes) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path, "rename into place")(e));
    }
    sync_dir(path)
}

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;
