//! This device's ed25519 key pair: a PKCS#8 PEM file with owner-only permissions, created, found and checked.
use crate::error::{Error, Result};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The default key file of a device: `$PEERSYNC_KEY_DIR`, else `$XDG_CONFIG_HOME/peersync`,
/// else `~/.config/peersync`, then `<device id>.pem`.
pub fn default_path(device_id: &str) -> Result<PathBuf> {
    let dir = if let Some(d) = std::env::var_os("PEERSYNC_KEY_DIR").filter(|d| !d.is_empty()) {
        PathBuf::from(d)
    } else if let Some(d) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        PathBuf::from(d).join("peersync")
    } else if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        PathBuf::from(h).join(".config").join("peersync")
    } else {
        return Err(Error::Key("cannot find a place for the key file: HOME is not set; pass --key FILE".into()));
    };
    Ok(dir.join(format!("{device_id}.pem")))
}

/// The key file to use: `--key` if given, else the default for this device.
pub fn resolve(explicit: Option<&Path>, device_id: &str) -> Result<PathBuf> {
    match explicit {
        Some(p) => Ok(p.to_path_buf()),
        None => default_path(device_id),
    }
}

/// Public key as peersync shows and stores it: 64 lowercase hex characters.
pub fn public_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().to_bytes())
}

/// Makes a new key from 32 bytes of the operating system's randomness.
pub fn generate() -> Result<SigningKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::Key(format!("no randomness from the operating system: {e}")))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes `key` to a new file readable by its owner only (0600), creating the folder (0700).
pub fn write_new(path: &Path, key: &SigningKey) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(|e| Error::Key(format!("cannot create {}: {e}", dir.display())))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
    }
    // PKCS#8 v1 (RFC 8410 without the optional public key): what OpenSSL 3.0 and Python's
    // cryptography read; v2 with the public key is refused by OpenSSL 3.0.
    let bytes = ed25519_dalek::pkcs8::KeypairBytes { secret_key: key.to_bytes(), public_key: None };
    let pem = bytes
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| Error::Key(format!("cannot encode the key: {e}")))?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::Key(format!("cannot create key file {}: {e}", path.display())))?;
    f.write_all(pem.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Reads a key file, refusing one that group or others can read or write, that another user
/// owns, or that sits in a folder group or others can write (where it could be swapped).
pub fn load(path: &Path) -> Result<SigningKey> {
    let meta = fs::metadata(path).map_err(|e| {
        Error::Key(format!(
            "cannot read key file {} ({e}); pass --key FILE, or run `peersync init` for this database",
            path.display()
        ))
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Key(format!(
            "key file {} is accessible by group or others (mode {mode:o}); refusing to use it. Run `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(Error::Key(format!(
            "key file {} belongs to another user (uid {}, this process runs as {me}); refusing to use it",
            path.display(),
            meta.uid()
        )));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir_mode = fs::metadata(dir)?.permissions().mode() & 0o777;
    if dir_mode & 0o022 != 0 {
        return Err(Error::Key(format!(
            "key file {} is in {}, which group or others can write (mode {dir_mode:o}), so the key could be swapped; move it to a folder only you can write (e.g. ~/.config/peersync, mode 700)",
            path.display(),
            dir.display()
        )));
    }
    let pem =
        fs::read_to_string(path).map_err(|e| Error::Key(format!("cannot read key file {}: {e}", path.display())))?;
    SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| Error::Key(format!("key file {} is not an ed25519 PKCS#8 PEM private key: {e}", path.display())))
}

/// Loads the key of this database's device and checks it matches the public key on record.
pub fn load_for(path: &Path, recorded_public_key: Option<&str>) -> Result<SigningKey> {
    let key = load(path)?;
    match recorded_public_key {
        Some(pk) if pk == public_hex(&key) => Ok(key),
        Some(pk) => Err(Error::Key(format!(
            "key file {} (public key {}) does not belong to this database, whose device has public key {pk}; pass the right --key FILE",
            path.display(),
            public_hex(&key)
        ))),
        None => Err(Error::Key(
            "this database has no key pair yet; run `peersync init --db PATH --name NAME` first".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_permissions() {
        let dir = std::env::temp_dir().join(format!("peersync-keys-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("k.pem");
        let key = generate().unwrap();
        write_new(&path, &key).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load(&path).unwrap().to_bytes(), key.to_bytes());
        assert!(write_new(&path, &key).is_err(), "never overwrites a key");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load_for(&path, Some(&"0".repeat(64))).is_err());
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("could be swapped"), "{err}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(load(&path).is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }
}
