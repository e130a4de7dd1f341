//! The archive's object store: whole objects put, got, listed and deleted below an archive
//! root, in S3 (`s3://bucket/prefix`) or a directory (`file:///dir`), through one API
//! (Apache Arrow's `object_store`).
//!
//! Invariants: object names are relative `a/b/c` paths of `[A-Za-z0-9._-]` segments, so no
//! name escapes the root; every call ends within a deadline (a constant per request, scaled
//! by size for bodies, per chunk for streams); nothing larger than the caller's bound is read
//! into memory or a file; no credential appears in `Debug`, `Display` or an error.

mod error;
mod target;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    WriteMultipart,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use error::StoreError;
pub use target::{
    ArchiveTarget, OPTIONS_JSON_BYTES_MAX, OPTION_BYTES_MAX, STORE_OPTION_KEYS, URL_BYTES_MAX,
};
use target::{Location, S3Target};

/// Deadline of one small call (head, put of a small object, delete, one listing page),
/// the store's own retries included.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// Slowest transfer rate a body may have before its call times out: a body of `n` bytes gets
/// `REQUEST_DEADLINE + n / TRANSFER_BYTES_PER_S_MIN`.
pub const TRANSFER_BYTES_PER_S_MIN: u64 = 1024 * 1024;
/// Deadline of each chunk of a streamed download.
pub const CHUNK_DEADLINE: Duration = Duration::from_secs(30);
/// `put_file` uploads files larger than this in parts of this size (S3's minimum is 5 MiB).
pub const MULTIPART_PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts of one `put_file` uploading at once: the memory it holds is this times the part size.
pub const MULTIPART_PARTS_IN_FLIGHT: usize = 2;
/// Longest object name, in bytes.
pub const NAME_BYTES_MAX: usize = 512;
/// Most entries one `list` returns.
pub const LIST_ENTRIES_MAX: usize = 1 << 20;

/// Retries of one request inside object_store (5xx, throttling, connection errors): few and
/// short, because the archiver retries whole steps with its own backoff.
const STORE_RETRIES_MAX: usize = 3;
const STORE_RETRY_WINDOW: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A response that sends nothing for this long is cut (there is no whole-request timeout in the
/// HTTP client: a large download may take minutes; our deadlines bound it instead).
const READ_STALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Read size of `put_file`.
const FILE_READ_BYTES: usize = 1024 * 1024;

/// One object below the archive root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    /// Relative to the archive root, e.g. `seg/00000000000000000001`.
    pub name: String,
    /// Bytes.
    pub size: u64,
}

/// An open archive store. Cheap to clone (the client is shared).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// No `Debug` on purpose: object_store's S3 client would print its credentials.
    objects: Arc<dyn ObjectStore>,
    /// The S3 prefix the archive lives under (`None` for a directory, whose root is the prefix
    /// of the local store itself).
    prefix: Option<String>,
    url: String,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("url", &self.inner.url).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store of `target`. A `file://` directory is created (mode 0700) if missing;
    /// an `s3://` target reads the AWS environment now for whatever its options leave out.
    /// Nothing is sent over the network yet.
    pub fn open(target: &ArchiveTarget) -> Result<Store, StoreError> {
        let url = target.display_url();
        let open_error = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            url: url.clone(),
            source,
        };
        let (objects, prefix): (Arc<dyn ObjectStore>, _) = match &target.location {
            Location::Dir { path } => {
                create_private_dir(Path::new(path)).map_err(|e| open_error(e.into()))?;
                let local =
                    LocalFileSystem::new_with_prefix(path).map_err(|e| open_error(e.into()))?;
                (Arc::new(local), None)
            }
            Location::S3(s3) => {
                let amazon = s3_builder(s3)?.build().map_err(|e| open_error(e.into()))?;
                let prefix = (!s3.prefix.is_empty()).then(|| s3.prefix.clone());
                (Arc::new(amazon), prefix)
            }
        };
        Ok(Store { inner: Arc::new(Inner { objects, prefix, url }) })
    }

    /// The archive's URL, without credentials.
    pub fn display_url(&self) -> &str {
        &self.inner.url
    }

    /// Writes the whole object `name`. A reader sees the old object or the new one, never a
    /// part: S3's PUT is atomic, the directory store writes a temporary file and renames it.
    pub async fn put(&self, name: &str, bytes: Bytes) -> Result<(), StoreError> {
        const OP: &str = "put";
        let path = self.path(name)?;
        let deadline = transfer_deadline(bytes.len() as u64);
        let put = self.inner.objects.put(&path, PutPayload::from(bytes));
        within(OP, name, deadline, put).await?;
        Ok(())
    }

    /// Uploads the local file at `local` as object `name`, streaming it: parts of
    /// [`MULTIPART_PART_BYTES`] past that size (the object appears whole when the upload
    /// completes, and an interrupted upload is aborted). Returns the bytes uploaded.
    pub async fn put_file(&self, name: &str, local: &Path) -> Result<u64, StoreError> {
        const OP: &str = "put_file";
        let path = self.path(name)?;
        let file_error = |source| local_file_error(OP, name, local, source);
        let mut file = tokio::fs::File::open(local).await.map_err(file_error)?;
        let size = file.metadata().await.map_err(file_error)?.len();
        if size <= MULTIPART_PART_BYTES as u64 {
            let mut buffer = Vec::with_capacity(size as usize);
            // `take` bounds the read if the file grows meanwhile.
            (&mut file)
                .take(MULTIPART_PART_BYTES as u64)
                .read_to_end(&mut buffer)
                .await
                .map_err(file_error)?;
            let bytes = buffer.len() as u64;
            self.put(name, Bytes::from(buffer)).await.map_err(|e| rename_op(e, OP))?;
            return Ok(bytes);
        }
        let upload =
            within(OP, name, REQUEST_DEADLINE, self.inner.objects.put_multipart(&path)).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART_BYTES);
        match self.write_parts(name, local, &mut file, &mut writer).await {
            Ok(bytes) => {
                // Completing waits for the parts still in flight, then for the final request.
                let parts = MULTIPART_PARTS_IN_FLIGHT as u64 + 1;
                let deadline = transfer_deadline(parts * MULTIPART_PART_BYTES as u64);
                within(OP, name, deadline, writer.finish()).await?;
                Ok(bytes)
            }
            Err(e) => {
                // Best effort: an upload left open costs storage until the bucket's lifecycle
                // rule (if any) removes it; the error that matters is `e`.
                let _ = tokio::time::timeout(REQUEST_DEADLINE, writer.abort()).await;
                Err(e)
            }
        }
    }

    async fn write_parts(
        &self,
        name: &str,
        local: &Path,
        file: &mut tokio::fs::File,
        writer: &mut WriteMultipart,
    ) -> Result<u64, StoreError> {
        const OP: &str = "put_file";
        let mut buffer = vec![0u8; FILE_READ_BYTES];
        let mut bytes = 0u64;
        let part_deadline = transfer_deadline(MULTIPART_PART_BYTES as u64);
        loop {
            let read = file
                .read(&mut buffer)
                .await
                .map_err(|source| local_file_error(OP, name, local, source))?;
            if read == 0 {
                return Ok(bytes);
            }
            // Bounds memory: at most this many parts are buffered or uploading.
            let capacity = writer.wait_for_capacity(MULTIPART_PARTS_IN_FLIGHT);
            within(OP, name, part_deadline, capacity).await?;
            writer.write(&buffer[..read]);
            bytes += read as u64;
        }
    }

    /// Reads the whole object `name`, refusing it before reading its body when it is larger
    /// than `bytes_max` (and cutting it off if the store sends more than it announced).
    pub async fn get(&self, name: &str, bytes_max: u64) -> Result<Bytes, StoreError> {
        const OP: &str = "get";
        let (size, mut chunks) = self.open_read(OP, name, bytes_max).await?;
        // `size <= bytes_max` and the object was sized by the store, so this allocation is
        // bounded by the caller.
        let mut body = BytesMut::with_capacity(usize::try_from(size).unwrap_or(usize::MAX));
        let deadline = tokio::time::Instant::now() + transfer_deadline(size);
        while let Some(chunk) = next_chunk(OP, name, &mut chunks, deadline).await? {
            check_received(OP, name, body.len() as u64 + chunk.len() as u64, bytes_max)?;
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// Streams the object `name` into the file at `local` (created mode 0600 or truncated,
    /// synced at the end, removed on failure), refusing objects larger than `bytes_max` before
    /// the file is touched. Returns the bytes written.
    pub async fn get_to_file(
        &self,
        name: &str,
        local: &Path,
        bytes_max: u64,
    ) -> Result<u64, StoreError> {
        const OP: &str = "get_to_file";
        let (size, mut chunks) = self.open_read(OP, name, bytes_max).await?;
        let file_error = |source| local_file_error(OP, name, local, source);
        // Private: what comes back is database content.
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(local)
            .await
            .map_err(file_error)?;
        let copied = async {
            let mut bytes = 0u64;
            let deadline = tokio::time::Instant::now() + transfer_deadline(size);
            while let Some(chunk) = next_chunk(OP, name, &mut chunks, deadline).await? {
                bytes += chunk.len() as u64;
                check_received(OP, name, bytes, bytes_max)?;
                file.write_all(&chunk).await.map_err(file_error)?;
            }
            file.sync_all().await.map_err(file_error)?;
            Ok(bytes)
        }
        .await;
        if copied.is_err() {
            drop(file);
            let _ = tokio::fs::remove_file(local).await;
        }
        copied
    }

    /// Every object below `dir` (`""` for the whole archive), at any depth, sorted by name.
    /// A directory with no object lists empty.
    pub async fn list(&self, dir: &str) -> Result<Vec<ObjectEntry>, StoreError> {
        const OP: &str = "list";
        let dir = dir.trim_end_matches('/');
        let prefix = if dir.is_empty() { self.root() } else { Some(self.path(dir)?) };
        let strip = self.inner.prefix.as_ref().map(|p| format!("{p}/"));
        let mut listing = self.inner.objects.list(prefix.as_ref());
        let mut entries = Vec::new();
        loop {
            // Each page is one request: the deadline applies to each.
            let next = tokio::time::timeout(REQUEST_DEADLINE, listing.next()).await;
            let meta = match next {
                Err(_) => return Err(timeout(OP, dir, REQUEST_DEADLINE)),
                Ok(None) => break,
                Ok(Some(Err(object_store::Error::NotFound { .. }))) => break,
                Ok(Some(Err(source))) => return Err(StoreError::from_store(OP, dir, source)),
                Ok(Some(Ok(meta))) => meta,
            };
            if entries.len() == LIST_ENTRIES_MAX {
                return Err(StoreError::ListTooLong {
                    dir: dir.into(),
                    entries_max: LIST_ENTRIES_MAX,
                });
            }
            let full = meta.location.as_ref();
            let name = match &strip {
                Some(strip) => full.strip_prefix(strip.as_str()).unwrap_or(full),
                None => full,
            };
            entries.push(ObjectEntry { name: name.to_owned(), size: meta.size });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Deletes the object `name`; an object already gone is not an error.
    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        const OP: &str = "delete";
        let path = self.path(name)?;
        match within(OP, name, REQUEST_DEADLINE, self.inner.objects.delete(&path)).await {
            Err(StoreError::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    /// Starts a download: checks the announced size against `bytes_max` before any body.
    async fn open_read(
        &self,
        op: &'static str,
        name: &str,
        bytes_max: u64,
    ) -> Result<
        (u64, futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>),
        StoreError,
    > {
        let path = self.path(name)?;
        let got = within(op, name, REQUEST_DEADLINE, self.inner.objects.get(&path)).await?;
        let size = got.meta.size;
        if size > bytes_max {
            return Err(StoreError::TooLarge { op, name: name.into(), size, bytes_max });
        }
        Ok((size, got.into_stream()))
    }

    /// The store path of `name`, after checking the name.
    fn path(&self, name: &str) -> Result<ObjectPath, StoreError> {
        check_name(name).map_err(|reason| StoreError::InvalidName {
            name: name.chars().take(80).collect(),
            reason,
        })?;
        let full = match &self.inner.prefix {
            Some(prefix) => format!("{prefix}/{name}"),
            None => name.to_owned(),
        };
        ObjectPath::parse(full).map_err(|_| StoreError::InvalidName {
            name: name.chars().take(80).collect(),
            reason: "not a valid object path",
        })
    }

    fn root(&self) -> Option<ObjectPath> {
        self.inner.prefix.as_ref().map(|p| ObjectPath::from(p.as_str()))
    }
}

/// A relative `a/b/c` name: segments of `[A-Za-z0-9._-]`, none empty, `.` or `..`.
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > NAME_BYTES_MAX {
        return Err("longer than 512 bytes");
    }
    if name.starts_with('/') {
        return Err("absolute: names are relative to the archive root");
    }
    for segment in name.split('/') {
        if segment.is_empty() {
            return Err("empty segment (// or a trailing /)");
        }
        if segment == "." || segment == ".." {
            return Err("'.' and '..' segments are not allowed");
        }
        if !segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
            return Err("only letters, digits, '.', '_', '-' and '/' are allowed");
        }
    }
    Ok(())
}

/// The client for an `s3://` target: options first, then the AWS environment.
fn s3_builder(s3: &S3Target) -> Result<AmazonS3Builder, StoreError> {
    // reqwest is built without a bundled TLS provider (it would bring aws-lc); it takes the
    // process default, which we make ring, as the rest of the crate uses. If another provider
    // was installed first, that one stays: the call only fails then.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = |key: &str| std::env::var(key).ok().filter(|value| !value.is_empty());
    let endpoint = match &s3.endpoint {
        Some(endpoint) => Some(endpoint.clone()),
        None => match env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL")) {
            Some(endpoint) => {
                target::check_endpoint(&endpoint).map_err(|e| StoreError::InvalidTarget {
                    reason: format!("from AWS_ENDPOINT_URL(_S3): {e}"),
                })?;
                Some(endpoint)
            }
            None => None,
        },
    };
    let region =
        s3.region.clone().or_else(|| env("AWS_REGION")).or_else(|| env("AWS_DEFAULT_REGION"));
    let allow_http = s3
        .allow_http
        .unwrap_or_else(|| endpoint.as_deref().is_some_and(|e| e.starts_with("http://")));
    let client = ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout_disabled()
        .with_read_timeout(READ_STALL_TIMEOUT);
    let retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: STORE_RETRIES_MAX,
        retry_timeout: STORE_RETRY_WINDOW,
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&s3.bucket)
        .with_region(region.unwrap_or_else(|| "us-east-1".into()))
        .with_virtual_hosted_style_request(!s3.path_style)
        .with_client_options(client)
        .with_retry(retry);
    if let Some(endpoint) = endpoint {
        let endpoint = endpoint.trim_end_matches('/');
        // object_store wants a virtual-hosted endpoint to name the bucket already.
        let endpoint = match (s3.path_style, endpoint.split_once("://")) {
            (false, Some((scheme, host))) => format!("{scheme}://{}.{host}", s3.bucket),
            _ => endpoint.to_owned(),
        };
        builder = builder.with_endpoint(endpoint);
    }
    builder = match &s3.credentials {
        Some(creds) => {
            let builder = builder
                .with_access_key_id(&creds.access_key_id)
                .with_secret_access_key(&creds.secret_access_key);
            match &creds.session_token {
                Some(token) => builder.with_token(token),
                None => builder,
            }
        }
        None => with_env_credentials(builder, env),
    };
    Ok(builder)
}

/// The usual AWS credential variables: static keys, else a web identity (EKS) or container
/// (ECS, EKS Pod Identity) role; with none of them object_store asks the instance metadata.
fn with_env_credentials(
    mut builder: AmazonS3Builder,
    env: impl Fn(&str) -> Option<String>,
) -> AmazonS3Builder {
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        builder = builder.with_access_key_id(id).with_secret_access_key(secret);
        if let Some(token) = env("AWS_SESSION_TOKEN") {
            builder = builder.with_token(token);
        }
        return builder;
    }
    let role_keys = [
        ("AWS_WEB_IDENTITY_TOKEN_FILE", AmazonS3ConfigKey::WebIdentityTokenFile),
        ("AWS_ROLE_ARN", AmazonS3ConfigKey::RoleArn),
        ("AWS_ROLE_SESSION_NAME", AmazonS3ConfigKey::RoleSessionName),
        (
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            AmazonS3ConfigKey::ContainerCredentialsRelativeUri,
        ),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", AmazonS3ConfigKey::ContainerCredentialsFullUri),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            AmazonS3ConfigKey::ContainerAuthorizationTokenFile,
        ),
    ];
    for (var, key) in role_keys {
        if let Some(value) = env(var) {
            builder = builder.with_config(key, value);
        }
    }
    builder
}

/// Creates the archive directory and its parents, private to this user, if missing.
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)
}

/// The deadline of a call moving `bytes` of body.
fn transfer_deadline(bytes: u64) -> Duration {
    REQUEST_DEADLINE + Duration::from_secs(bytes / TRANSFER_BYTES_PER_S_MIN)
}

/// Runs one store call under a deadline, mapping its error.
async fn within<T>(
    op: &'static str,
    name: &str,
    deadline: Duration,
    call: impl std::future::Future<Output = object_store::Result<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(deadline, call).await {
        Err(_) => Err(timeout(op, name, deadline)),
        Ok(result) => result.map_err(|source| StoreError::from_store(op, name, source)),
    }
}

/// The next chunk of a download, within both the per-chunk and the whole-body deadline.
async fn next_chunk(
    op: &'static str,
    name: &str,
    chunks: &mut futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>,
    body_deadline: tokio::time::Instant,
) -> Result<Option<Bytes>, StoreError> {
    let chunk_deadline = tokio::time::Instant::now() + CHUNK_DEADLINE;
    let deadline = chunk_deadline.min(body_deadline);
    match tokio::time::timeout_at(deadline, chunks.next()).await {
        Err(_) => Err(timeout(op, name, CHUNK_DEADLINE)),
        Ok(None) => Ok(None),
        Ok(Some(chunk)) => {
            chunk.map(Some).map_err(|source| StoreError::from_store(op, name, source))
        }
    }
}

fn check_received(
    op: &'static str,
    name: &str,
    bytes: u64,
    bytes_max: u64,
) -> Result<(), StoreError> {
    if bytes > bytes_max {
        return Err(StoreError::TooLarge { op, name: name.into(), size: bytes, bytes_max });
    }
    Ok(())
}

fn timeout(op: &'static str, name: &str, after: Duration) -> StoreError {
    StoreError::Timeout { op, name: name.into(), after }
}

fn local_file_error(
    op: &'static str,
    name: &str,
    local: &Path,
    source: std::io::Error,
) -> StoreError {
    StoreError::LocalFile { op, name: name.into(), path: local.display().to_string(), source }
}

/// `put_file` of a small file goes through `put`: its errors name the call the caller made.
fn rename_op(error: StoreError, op: &'static str) -> StoreError {
    match error {
        StoreError::NotFound { name, .. } => StoreError::NotFound { op, name },
        StoreError::Timeout { name, after, .. } => StoreError::Timeout { op, name, after },
        StoreError::Store { name, source, .. } => StoreError::Store { op, name, source },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("archive/db");
        let target = ArchiveTarget::parse(&format!("file://{}", root.display()), None).unwrap();
        let store = Store::open(&target).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn directory_store_round_trip() {
        let (dir, store) = dir_store();
        let root = dir.path().join("archive/db");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&root).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the archive directory is private");
        assert_eq!(store.list("").await.unwrap(), vec![], "a new archive is empty");

        store.put("seg/0002", Bytes::from_static(b"second")).await.unwrap();
        store.put("seg/0001", Bytes::from_static(b"first!!")).await.unwrap();
        store.put("base/0001", Bytes::from_static(b"base")).await.unwrap();
        store.put("manifest", Bytes::from_static(b"m1")).await.unwrap();
        store.put("manifest", Bytes::from_static(b"m2")).await.unwrap();
        assert_eq!(&store.get("manifest", 2).await.unwrap()[..], b"m2", "put replaces");
        assert_eq!(std::fs::read(root.join("seg/0001")).unwrap(), b"first!!");

        let names = |entries: Vec<ObjectEntry>| -> Vec<(String, u64)> {
            entries.into_iter().map(|e| (e.name, e.size)).collect()
        };
        let all = names(store.list("").await.unwrap());
        let expected = [("base/0001", 4), ("manifest", 2), ("seg/0001", 7), ("seg/0002", 6)];
        assert_eq!(all, expected.map(|(n, s)| (n.to_string(), s)).to_vec());
        let segs = names(store.list("seg/").await.unwrap());
        assert_eq!(segs, vec![("seg/0001".to_string(), 7), ("seg/0002".to_string(), 6)]);
        assert_eq!(store.list("nothing/here").await.unwrap(), vec![]);

        store.delete("seg/0001").await.unwrap();
        store.delete("seg/0001").await.expect("deleting a missing object is not an error");
        let err = store.get("seg/0001", 100).await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert_eq!(err.to_string(), "archive get seg/0001: no such object");
        assert_eq!(names(store.list("seg").await.unwrap()), vec![("seg/0002".to_string(), 6)]);
    }

    #[tokio::test]
    async fn sizes_are_bounded_before_reading() {
        let (dir, store) = dir_store();
        store.put("big", Bytes::from(vec![7u8; 1000])).await.unwrap();
        let err = store.get("big", 999).await.unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { size: 1000, bytes_max: 999, .. }), "{err}");
        assert_eq!(store.get("big", 1000).await.unwrap().len(), 1000);

        let out = dir.path().join("out");
        let err = store.get_to_file("big", &out, 10).await.unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
        assert!(!out.exists(), "nothing is written for a refused object");
        assert_eq!(store.get_to_file("big", &out, 1000).await.unwrap(), 1000);
        assert_eq!(std::fs::read(&out).unwrap(), vec![7u8; 1000]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
        let err = store.get_to_file("missing", &out, 10).await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    #[tokio::test]
    async fn put_file_small_and_multipart() {
        let (dir, store) = dir_store();
        let small = dir.path().join("small");
        std::fs::write(&small, b"tiny file").unwrap();
        assert_eq!(store.put_file("files/small", &small).await.unwrap(), 9);
        assert_eq!(&store.get("files/small", 9).await.unwrap()[..], b"tiny file");

        // Past the part size: a multipart upload, which the directory store also supports.
        let large = dir.path().join("large");
        let content: Vec<u8> =
            (0..MULTIPART_PART_BYTES * 2 + 12345).map(|i| (i % 251) as u8).collect();
        std::fs::write(&large, &content).unwrap();
        let bytes = store.put_file("files/large", &large).await.unwrap();
        assert_eq!(bytes, content.len() as u64);
        let back = dir.path().join("back");
        store.get_to_file("files/large", &back, bytes).await.unwrap();
        assert!(std::fs::read(&back).unwrap() == content, "the multipart object round-trips");
        let listed = store.list("files").await.unwrap();
        let listed: Vec<_> = listed.iter().map(|e| (e.name.as_str(), e.size)).collect();
        assert_eq!(listed, vec![("files/large", bytes), ("files/small", 9)]);

        let err = store.put_file("files/x", &dir.path().join("absent")).await.unwrap_err();
        assert!(matches!(err, StoreError::LocalFile { .. }), "{err}");
        assert!(err.to_string().contains("absent"), "{err}");
    }

    #[tokio::test]
    async fn names_are_checked() {
        let (_dir, store) = dir_store();
        let long = "a".repeat(NAME_BYTES_MAX + 1);
        for bad in ["", "/abs", "a//b", "a/", "../up", "a/../b", "./a", "a b", "a\\b", &long] {
            let err = store.put(bad, Bytes::new()).await.unwrap_err();
            assert!(matches!(err, StoreError::InvalidName { .. }), "{bad:?}: {err}");
            let err = store.get(bad, 1).await.unwrap_err();
            assert!(matches!(err, StoreError::InvalidName { .. }), "{bad:?}: {err}");
        }
        assert!(matches!(store.list("../x").await, Err(StoreError::InvalidName { .. })));
        assert!(matches!(store.delete("a//b").await, Err(StoreError::InvalidName { .. })));
        for good in ["a", "seg/00000001-00000002.zst", "A_b-c.d/e"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn debug_shows_only_the_url() {
        let options = r#"{"endpoint":"http://127.0.0.1:1","path_style":true,"access_key_id":"KEYID123","secret_access_key":"SECRET-456"}"#;
        let target = ArchiveTarget::parse("s3://bucket/p", Some(options)).unwrap();
        let store = Store::open(&target).unwrap();
        let shown = format!("{store:?}");
        assert!(shown.contains("s3://bucket/p"), "{shown}");
        assert!(!shown.contains("KEYID123") && !shown.contains("SECRET-456"), "{shown}");
    }

    #[test]
    fn deadlines_scale_with_size() {
        assert_eq!(transfer_deadline(0), REQUEST_DEADLINE);
        let part = transfer_deadline(MULTIPART_PART_BYTES as u64);
        assert_eq!(part, REQUEST_DEADLINE + Duration::from_secs(8));
    }
}
