//! What `object_store` does not reach: the store settings that keep deleted
//! data, and the kept versions themselves. Erasure needs both: deleting an
//! object on a versioned bucket only hides it behind a delete marker.
//!
//! | store | settings read | versions listed | versions deleted |
//! |---|---|---|---|
//! | S3 | `GetBucketVersioning` (status, MFA delete), `GetObjectLockConfiguration` | `ListObjectVersions` (versions and delete markers under the prefix) | `DeleteObject?versionId=` |
//! | Azure Blob | Blob service properties (`DeleteRetentionPolicy`: soft delete, permanent delete allowed), container properties (immutability policy, legal hold) | `List Blobs` with `include=versions,deleted,snapshots` | `Delete Blob` with `versionid=` / `snapshot=` (`deletetype=permanent` for soft-deleted blobs) |
//! | local, memory | nothing to read: a deleted file is gone | — | — |
//! | GCS | not read: custos cannot see a GCS bucket's versioning or retention yet, so erasure refuses such a target rather than claim it | — | — |
//!
//! The calls are signed by Apache OpenDAL's `reqsign` (SigV4 for S3, Shared
//! Key for Azure) with the same static credentials and endpoint that
//! `object_store` reads from the environment (`AWS_*`, `AZURE_STORAGE_*`,
//! the Azurite emulator flag). Credentials that only an instance role or a
//! token service provides are not supported here: the erasure then stops
//! before deleting anything, naming what is missing.

use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use serde::Deserialize;

use crate::{Error, Result};

/// Azure REST API version of the calls made here.
const AZURE_VERSION: &str = "2021-12-02";
/// SHA-256 of an empty body (SigV4's payload hash of our bodiless requests).
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What a target's store does with deleted objects, as read before erasure.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Retention {
    /// `s3`, `azure`, `gcs`, `local`, `memory`.
    pub store: String,
    /// Object versioning, in words (`enabled`, `suspended`, `never enabled`,
    /// `none (local file system)`).
    pub versioning: String,
    /// Soft delete, in words.
    pub soft_delete: String,
    /// Object lock or immutability, in words.
    pub object_lock: String,
    /// True when deleted objects may survive as versions, delete markers or
    /// soft-deleted blobs: they are listed and deleted one by one.
    pub keeps_versions: bool,
    /// Why erasure cannot delete everything on this target (it then deletes
    /// nothing).
    pub blocks: Option<String>,
}

/// What a version entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionKind {
    /// A stored version (current or not).
    Version,
    /// An S3 delete marker.
    DeleteMarker,
    /// An Azure blob snapshot.
    Snapshot,
    /// An Azure soft-deleted blob.
    SoftDeleted,
}

/// One version (or delete marker, snapshot, soft-deleted blob) under the
/// repository prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// Path relative to the repository prefix (`keys/…`, `data/…`).
    pub path: String,
    /// Version ID (S3 `versionId`, Azure `versionid`), or the snapshot time.
    pub version_id: Option<String>,
    /// Size in bytes (0 for delete markers).
    pub size: u64,
    /// What it is.
    pub kind: VersionKind,
}

/// The version calls for one repository URL.
pub(crate) struct Versions {
    inner: Inner,
    client: reqwest::Client,
}

enum Inner {
    S3(S3),
    Azure(Azure),
    /// Local or memory: nothing is kept once deleted.
    None(&'static str, &'static str),
    /// Settings that cannot be read.
    Unsupported(&'static str, String),
}

struct S3 {
    /// Bucket URL without a trailing slash (path or virtual-hosted style).
    bucket_url: String,
    bucket: String,
    /// Key prefix of the repository, with a trailing `/` (or empty).
    prefix: String,
    signer: reqsign_core::Signer<reqsign_aws_v4::Credential>,
}

struct Azure {
    /// Container URL without a trailing slash.
    container_url: String,
    /// The account's blob endpoint (for service properties).
    account_url: String,
    container: String,
    prefix: String,
    signer: reqsign_core::Signer<reqsign_azure_storage::Credential>,
}

fn split(rest: &str) -> (String, String) {
    let rest = rest.trim_start_matches('/');
    match rest.split_once('/') {
        Some((b, p)) => {
            let p = p.trim_matches('/');
            (
                b.to_string(),
                if p.is_empty() {
                    String::new()
                } else {
                    format!("{p}/")
                },
            )
        }
        None => (rest.to_string(), String::new()),
    }
}

/// Percent-encodes a key for a URL path (every byte but unreserved ones and
/// `/`), as SigV4 and Azure expect it encoded once.
fn encode_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a query value.
fn encode_query(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unsupported(what: impl Into<String>) -> Error {
    Error::Refused(what.into())
}

impl Versions {
    /// The version calls for the repository at `url`.
    ///
    /// # Errors
    /// [`Error::Usage`] for a URL `object_store` would not take either.
    pub(crate) fn for_url(url: &str) -> Result<Versions> {
        super::install_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Usage(format!("cannot build an HTTP client: {e}")))?;
        let inner = if let Some(rest) = url.strip_prefix("s3://") {
            S3::from_env(rest)?
        } else if let Some(rest) = url
            .strip_prefix("az://")
            .or_else(|| url.strip_prefix("azure://"))
        {
            Azure::from_env(rest)?
        } else if url.starts_with("gs://") {
            Inner::Unsupported(
                "gcs",
                "custos cannot read a GCS bucket's object versioning, soft delete or retention policy: it cannot show that deleted objects are gone".into(),
            )
        } else if url.starts_with("memory://") {
            Inner::None("memory", "none (memory store)")
        } else {
            Inner::None("local", "none (local file system: a deleted file is gone)")
        };
        Ok(Versions { inner, client })
    }

    /// Reads the settings that decide whether deleted objects survive.
    ///
    /// # Errors
    /// [`Error::Backend`]-like failures as [`Error::Refused`] naming the
    /// call: a setting that cannot be read is never taken as "off".
    pub(crate) async fn inspect(&self) -> Result<Retention> {
        match &self.inner {
            Inner::S3(s3) => s3.inspect(&self.client).await,
            Inner::Azure(az) => az.inspect(&self.client).await,
            Inner::None(store, what) => Ok(Retention {
                store: (*store).into(),
                versioning: (*what).into(),
                soft_delete: (*what).into(),
                object_lock: (*what).into(),
                keeps_versions: false,
                blocks: None,
            }),
            Inner::Unsupported(store, why) => Ok(Retention {
                store: (*store).into(),
                versioning: "not read".into(),
                soft_delete: "not read".into(),
                object_lock: "not read".into(),
                keeps_versions: false,
                blocks: Some(why.clone()),
            }),
        }
    }

    /// Every version, delete marker, snapshot and soft-deleted blob under the
    /// repository prefix (empty for stores that keep none).
    ///
    /// # Errors
    /// [`Error::Refused`] naming the failed call.
    pub(crate) async fn list(&self) -> Result<Vec<ObjectVersion>> {
        match &self.inner {
            Inner::S3(s3) => s3.list(&self.client).await,
            Inner::Azure(az) => az.list(&self.client).await,
            Inner::None(..) => Ok(Vec::new()),
            Inner::Unsupported(_, why) => Err(unsupported(why.clone())),
        }
    }

    /// The content of one version (to fingerprint old key slots).
    ///
    /// # Errors
    /// [`Error::Refused`] naming the failed call.
    pub(crate) async fn get(&self, v: &ObjectVersion) -> Result<Bytes> {
        match &self.inner {
            Inner::S3(s3) => s3.get(&self.client, v).await,
            Inner::Azure(az) => az.get(&self.client, v).await,
            Inner::None(..) | Inner::Unsupported(..) => Err(unsupported(
                "this store keeps no versions to read".to_string(),
            )),
        }
    }

    /// Deletes one version for good.
    ///
    /// # Errors
    /// [`Error::Refused`] naming the failed call.
    pub(crate) async fn delete(&self, v: &ObjectVersion) -> Result<()> {
        match &self.inner {
            Inner::S3(s3) => s3.delete(&self.client, v).await,
            Inner::Azure(az) => az.delete(&self.client, v).await,
            Inner::None(..) | Inner::Unsupported(..) => Ok(()),
        }
    }
}

/// Sends a signed request head; returns the response.
async fn send(
    client: &reqwest::Client,
    parts: http::request::Parts,
    what: &str,
) -> Result<reqwest::Response> {
    let mut req = client.request(parts.method.clone(), parts.uri.to_string());
    for (k, v) in &parts.headers {
        req = req.header(k, v);
    }
    req.send()
        .await
        .map_err(|e| unsupported(format!("{what}: {e}")))
}

/// The status and body of a response.
async fn read(resp: reqwest::Response, what: &str) -> Result<(u16, Bytes)> {
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|e| unsupported(format!("{what}: {e}")))?;
    Ok((status, body))
}

/// Every page of a listing: `page(marker)` fetches one and names the next
/// page's marker. A store that hands back the marker it was given would
/// make this loop forever: it is refused instead.
async fn all_pages<M, F, Fut>(what: &str, mut page: F) -> Result<Vec<ObjectVersion>>
where
    M: PartialEq + Clone,
    F: FnMut(Option<M>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<ObjectVersion>, Option<M>)>>,
{
    let mut out = Vec::new();
    let mut marker: Option<M> = None;
    loop {
        let (items, next) = page(marker.clone()).await?;
        out.extend(items);
        match next {
            Some(n) if marker.as_ref() == Some(&n) => {
                return Err(unsupported(format!(
                    "{what}: the store returned the same page twice"
                )))
            }
            Some(n) => marker = Some(n),
            None => return Ok(out),
        }
    }
}

/// The head of a bodiless request, ready to sign.
fn head(method: http::Method, url: &str, headers: &[(&str, &str)]) -> Result<http::request::Parts> {
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(())
        .map(|r| r.into_parts().0)
        .map_err(|e| Error::Usage(format!("bad request URL {url}: {e}")))
}

fn xml<T: for<'de> Deserialize<'de>>(body: &[u8], what: &str) -> Result<T> {
    let text = std::str::from_utf8(body)
        .map_err(|_| unsupported(format!("{what}: the answer is not UTF-8 XML")))?;
    quick_xml::de::from_str(text)
        .map_err(|e| unsupported(format!("{what}: cannot read the answer ({e}): {text:.200}")))
}

fn refused_status(what: &str, status: u16, body: &[u8]) -> Error {
    let text = String::from_utf8_lossy(body);
    let code = text
        .split("<Code>")
        .nth(1)
        .and_then(|s| s.split("</Code>").next())
        .unwrap_or("");
    unsupported(format!(
        "{what} answered HTTP {status}{}",
        if code.is_empty() {
            String::new()
        } else {
            format!(" ({code})")
        }
    ))
}

impl S3 {
    fn from_env(rest: &str) -> Result<Inner> {
        let (bucket, prefix) = split(rest);
        let b = AmazonS3Builder::from_env().with_bucket_name(&bucket);
        let get = |k: AmazonS3ConfigKey| b.get_config_value(&k).filter(|v| !v.is_empty());
        let (Some(key_id), Some(secret)) = (
            get(AmazonS3ConfigKey::AccessKeyId),
            get(AmazonS3ConfigKey::SecretAccessKey),
        ) else {
            return Ok(Inner::Unsupported(
                "s3",
                "custos reads bucket versioning with the static credentials of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and none are set".into(),
            ));
        };
        let region = get(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
        let virtual_hosted =
            get(AmazonS3ConfigKey::VirtualHostedStyleRequest).is_some_and(|v| v == "true");
        let bucket_url = match get(AmazonS3ConfigKey::Endpoint) {
            Some(e) if virtual_hosted => e.trim_end_matches('/').to_string(),
            Some(e) => format!("{}/{bucket}", e.trim_end_matches('/')),
            None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        };
        let mut creds = reqsign_aws_v4::StaticCredentialProvider::new(&key_id, &secret);
        if let Some(t) = get(AmazonS3ConfigKey::Token) {
            creds = creds.with_session_token(&t);
        }
        let signer = reqsign_core::Signer::new(
            reqsign_core::Context::new(),
            creds,
            reqsign_aws_v4::RequestSigner::new("s3", &region),
        );
        Ok(Inner::S3(S3 {
            bucket_url,
            bucket,
            prefix,
            signer,
        }))
    }

    async fn call(
        &self,
        client: &reqwest::Client,
        method: http::Method,
        url: &str,
        what: &str,
    ) -> Result<(u16, Bytes)> {
        let mut parts = head(method, url, &[("x-amz-content-sha256", EMPTY_SHA256)])?;
        self.signer
            .sign(&mut parts, None)
            .await
            .map_err(|e| unsupported(format!("{what}: cannot sign the request: {e}")))?;
        read(send(client, parts, what).await?, what).await
    }

    async fn inspect(&self, client: &reqwest::Client) -> Result<Retention> {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase")]
        struct VersioningConfiguration {
            status: Option<String>,
            mfa_delete: Option<String>,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase")]
        struct ObjectLockConfiguration {
            object_lock_enabled: Option<String>,
        }
        let what = format!("GetBucketVersioning on bucket {}", self.bucket);
        let (status, body) = self
            .call(
                client,
                http::Method::GET,
                &format!("{}?versioning", self.bucket_url),
                &what,
            )
            .await?;
        if status != 200 {
            return Err(refused_status(&what, status, &body));
        }
        let v: VersioningConfiguration = if body.iter().all(u8::is_ascii_whitespace) {
            VersioningConfiguration::default()
        } else {
            xml(&body, &what)?
        };
        let what_lock = format!("GetObjectLockConfiguration on bucket {}", self.bucket);
        let (status, body) = self
            .call(
                client,
                http::Method::GET,
                &format!("{}?object-lock", self.bucket_url),
                &what_lock,
            )
            .await?;
        let lock_enabled = match status {
            200 => {
                let l: ObjectLockConfiguration = xml(&body, &what_lock)?;
                l.object_lock_enabled.as_deref() == Some("Enabled")
            }
            // No configuration: S3 answers 404 ObjectLockConfigurationNotFoundError.
            404 if String::from_utf8_lossy(&body).contains("ObjectLockConfigurationNotFound") => {
                false
            }
            _ => return Err(refused_status(&what_lock, status, &body)),
        };
        let versioning = match v.status.as_deref() {
            Some("Enabled") => "enabled",
            Some("Suspended") => "suspended (versions made while it was enabled remain)",
            _ => "never enabled",
        };
        let mfa = v.mfa_delete.as_deref() == Some("Enabled");
        let blocks = if lock_enabled {
            Some(format!(
                "bucket {} has S3 Object Lock enabled: locked versions cannot be deleted before their retention ends",
                self.bucket
            ))
        } else if mfa {
            Some(format!(
                "bucket {} has MFA delete enabled: versions can only be deleted with the root account's MFA device",
                self.bucket
            ))
        } else {
            None
        };
        Ok(Retention {
            store: "s3".into(),
            versioning: if mfa {
                format!("{versioning}, MFA delete enabled")
            } else {
                versioning.into()
            },
            soft_delete: "none (S3 keeps deleted data only as versions)".into(),
            object_lock: if lock_enabled {
                "enabled".into()
            } else {
                "not configured".into()
            },
            // Even a bucket never versioned is listed: a listing costs one
            // request and proves the point.
            keeps_versions: v.status.is_some(),
            blocks,
        })
    }

    async fn list(&self, client: &reqwest::Client) -> Result<Vec<ObjectVersion>> {
        let what = format!("ListObjectVersions on bucket {}", self.bucket);
        all_pages(&what, |markers: Option<S3Markers>| {
            let what = &what;
            async move {
                let mut url = format!(
                    "{}?prefix={}&versions",
                    self.bucket_url,
                    encode_query(&self.prefix)
                );
                if let Some((k, v)) = &markers {
                    url.push_str(&format!("&key-marker={}", encode_query(k)));
                    if let Some(v) = v {
                        url.push_str(&format!("&version-id-marker={}", encode_query(v)));
                    }
                }
                let (status, body) = self.call(client, http::Method::GET, &url, what).await?;
                if status != 200 {
                    return Err(refused_status(what, status, &body));
                }
                parse_s3_versions(&body, &self.prefix)
            }
        })
        .await
    }

    fn object_url(&self, v: &ObjectVersion) -> String {
        format!(
            "{}/{}?versionId={}",
            self.bucket_url,
            encode_path(&format!("{}{}", self.prefix, v.path)),
            encode_query(v.version_id.as_deref().unwrap_or("null"))
        )
    }

    async fn get(&self, client: &reqwest::Client, v: &ObjectVersion) -> Result<Bytes> {
        let what = format!("GetObject of {} version {:?}", v.path, v.version_id);
        let (status, body) = self
            .call(client, http::Method::GET, &self.object_url(v), &what)
            .await?;
        if status != 200 {
            return Err(refused_status(&what, status, &body));
        }
        Ok(body)
    }

    async fn delete(&self, client: &reqwest::Client, v: &ObjectVersion) -> Result<()> {
        let what = format!("DeleteObject of {} version {:?}", v.path, v.version_id);
        let (status, body) = self
            .call(client, http::Method::DELETE, &self.object_url(v), &what)
            .await?;
        if !(200..300).contains(&status) && status != 404 {
            return Err(refused_status(&what, status, &body));
        }
        Ok(())
    }
}

impl Azure {
    fn from_env(rest: &str) -> Result<Inner> {
        let (container, prefix) = split(rest);
        let b = MicrosoftAzureBuilder::from_env().with_container_name(&container);
        let get = |k: AzureConfigKey| b.get_config_value(&k).filter(|v| !v.is_empty());
        let emulator = get(AzureConfigKey::UseEmulator).is_some_and(|v| v == "true");
        let (account, key, account_url) = if emulator {
            // As object_store does: the emulator's URL from the environment,
            // the well-known development account.
            let base = std::env::var("AZURITE_BLOB_STORAGE_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:10000".into());
            let account = "devstoreaccount1".to_string();
            let key = get(AzureConfigKey::AccessKey).unwrap_or_else(|| {
                "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==".into()
            });
            let url = format!("{}/{account}", base.trim_end_matches('/'));
            (account, key, url)
        } else {
            let (Some(account), Some(key)) = (
                get(AzureConfigKey::AccountName),
                get(AzureConfigKey::AccessKey),
            ) else {
                return Ok(Inner::Unsupported(
                    "azure",
                    "custos reads the blob service's soft delete setting with a shared key (AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY), and none is set".into(),
                ));
            };
            let url = get(AzureConfigKey::Endpoint)
                .map(|e| e.trim_end_matches('/').to_string())
                .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
            (account, key, url)
        };
        let signer = reqsign_core::Signer::new(
            reqsign_core::Context::new(),
            reqsign_azure_storage::StaticCredentialProvider::new_shared_key(&account, &key),
            reqsign_azure_storage::RequestSigner::new(),
        );
        Ok(Inner::Azure(Azure {
            container_url: format!("{account_url}/{container}"),
            account_url,
            container,
            prefix,
            signer,
        }))
    }

    async fn request(
        &self,
        client: &reqwest::Client,
        method: http::Method,
        url: &str,
        what: &str,
    ) -> Result<reqwest::Response> {
        let date = jiff::Timestamp::now()
            .strftime("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let headers = [
            ("x-ms-version", AZURE_VERSION),
            ("x-ms-date", date.as_str()),
        ];
        let mut parts = head(method, url, &headers)?;
        self.signer
            .sign(&mut parts, None)
            .await
            .map_err(|e| unsupported(format!("{what}: cannot sign the request: {e}")))?;
        send(client, parts, what).await
    }

    async fn call(
        &self,
        client: &reqwest::Client,
        method: http::Method,
        url: &str,
        what: &str,
    ) -> Result<(u16, Bytes)> {
        read(self.request(client, method, url, what).await?, what).await
    }

    async fn inspect(&self, client: &reqwest::Client) -> Result<Retention> {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase")]
        struct DeleteRetentionPolicy {
            #[serde(default)]
            enabled: bool,
            days: Option<u32>,
            #[serde(default)]
            allow_permanent_delete: bool,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase")]
        struct StorageServiceProperties {
            #[serde(default)]
            delete_retention_policy: DeleteRetentionPolicy,
        }
        let what = "Get Blob Service Properties".to_string();
        let (status, body) = self
            .call(
                client,
                http::Method::GET,
                &format!("{}/?restype=service&comp=properties", self.account_url),
                &what,
            )
            .await?;
        if status != 200 {
            return Err(refused_status(&what, status, &body));
        }
        let p: StorageServiceProperties = xml(&body, &what)?;
        let what_c = format!("Get Container Properties of {}", self.container);
        let resp = self.container_flags(client, &what_c).await?;
        let soft = &p.delete_retention_policy;
        let blocks = if resp.0 || resp.1 {
            Some(format!(
                "container {} has {}: its blobs cannot be deleted before the policy allows",
                self.container,
                if resp.0 {
                    "an immutability policy"
                } else {
                    "a legal hold"
                }
            ))
        } else if soft.enabled && !soft.allow_permanent_delete {
            Some(format!(
                "the storage account keeps deleted blobs for {} days (soft delete) and does not allow permanent delete: enable AllowPermanentDelete or turn soft delete off",
                soft.days.unwrap_or(0)
            ))
        } else {
            None
        };
        Ok(Retention {
            store: "azure".into(),
            // Versioning is an account setting the data plane does not show:
            // versions are found by listing them.
            versioning: "not shown by the blob service: versions are listed and deleted".into(),
            soft_delete: if soft.enabled {
                format!(
                    "enabled, {} days{}",
                    soft.days.unwrap_or(0),
                    if soft.allow_permanent_delete {
                        ", permanent delete allowed"
                    } else {
                        ""
                    }
                )
            } else {
                "disabled".into()
            },
            object_lock: match resp {
                (true, _) => "immutability policy".into(),
                (_, true) => "legal hold".into(),
                _ => "none".into(),
            },
            keeps_versions: true,
            blocks,
        })
    }

    /// (immutability policy, legal hold) of the container.
    async fn container_flags(&self, client: &reqwest::Client, what: &str) -> Result<(bool, bool)> {
        let url = format!("{}?restype=container", self.container_url);
        let resp = self.request(client, http::Method::GET, &url, what).await?;
        let status = resp.status().as_u16();
        if status != 200 {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(refused_status(what, status, &body));
        }
        let flag = |h: &str| {
            resp.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        };
        Ok((
            flag("x-ms-has-immutability-policy"),
            flag("x-ms-has-legal-hold"),
        ))
    }

    async fn list(&self, client: &reqwest::Client) -> Result<Vec<ObjectVersion>> {
        let what = format!(
            "List Blobs (versions, snapshots, deleted) of {}",
            self.container
        );
        all_pages(&what, |marker: Option<String>| {
            let what = &what;
            async move {
                let mut url = format!(
                    "{}?restype=container&comp=list&prefix={}&include=versions,deleted,snapshots",
                    self.container_url,
                    encode_query(&self.prefix)
                );
                if let Some(m) = &marker {
                    url.push_str(&format!("&marker={}", encode_query(m)));
                }
                let (status, body) = self.call(client, http::Method::GET, &url, what).await?;
                if status != 200 {
                    return Err(refused_status(what, status, &body));
                }
                parse_azure_blobs(&body, &self.prefix)
            }
        })
        .await
    }

    fn blob_url(&self, v: &ObjectVersion, delete: bool) -> String {
        let mut url = format!(
            "{}/{}",
            self.container_url,
            encode_path(&format!("{}{}", self.prefix, v.path))
        );
        let mut q = Vec::new();
        match (v.kind, v.version_id.as_deref()) {
            (VersionKind::Snapshot, Some(s)) => q.push(format!("snapshot={}", encode_query(s))),
            (_, Some(id)) => q.push(format!("versionid={}", encode_query(id))),
            _ => {}
        }
        if delete && v.kind == VersionKind::SoftDeleted {
            q.push("deletetype=permanent".into());
        }
        if !q.is_empty() {
            url.push('?');
            url.push_str(&q.join("&"));
        }
        url
    }

    async fn get(&self, client: &reqwest::Client, v: &ObjectVersion) -> Result<Bytes> {
        let what = format!("Get Blob {} {:?}", v.path, v.version_id);
        let (status, body) = self
            .call(client, http::Method::GET, &self.blob_url(v, false), &what)
            .await?;
        if status != 200 {
            return Err(refused_status(&what, status, &body));
        }
        Ok(body)
    }

    async fn delete(&self, client: &reqwest::Client, v: &ObjectVersion) -> Result<()> {
        let what = format!("Delete Blob {} {:?}", v.path, v.version_id);
        let (status, body) = self
            .call(client, http::Method::DELETE, &self.blob_url(v, true), &what)
            .await?;
        if !(200..300).contains(&status) && status != 404 {
            return Err(refused_status(&what, status, &body));
        }
        Ok(())
    }
}

/// The S3 markers of the next `ListObjectVersions` page.
pub(crate) type S3Markers = (String, Option<String>);

/// One page of an S3 `ListObjectVersions` answer: the versions and delete
/// markers under `prefix` (paths relative to it), and the markers of the next
/// page when the answer is truncated.
///
/// # Errors
/// [`Error::Refused`] for an answer that is not such a page.
pub fn parse_s3_versions(
    body: &[u8],
    prefix: &str,
) -> Result<(Vec<ObjectVersion>, Option<S3Markers>)> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        key: String,
        version_id: Option<String>,
        #[serde(default)]
        size: u64,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct ListVersionsResult {
        #[serde(default)]
        is_truncated: bool,
        next_key_marker: Option<String>,
        next_version_id_marker: Option<String>,
        #[serde(default, rename = "$value")]
        entries: Vec<Item>,
    }
    #[derive(Deserialize)]
    enum Item {
        Version(Entry),
        DeleteMarker(Entry),
        #[serde(other)]
        Other,
    }
    let page: ListVersionsResult = xml(body, "ListObjectVersions")?;
    let mut out = Vec::new();
    for item in page.entries {
        let (e, kind) = match item {
            Item::Version(e) => (e, VersionKind::Version),
            Item::DeleteMarker(e) => (e, VersionKind::DeleteMarker),
            Item::Other => continue,
        };
        let Some(path) = e.key.strip_prefix(prefix) else {
            continue;
        };
        out.push(ObjectVersion {
            path: path.to_string(),
            // Objects written before versioning was enabled have the
            // version "null", which is also how they are deleted.
            version_id: Some(e.version_id.unwrap_or_else(|| "null".into())),
            size: e.size,
            kind,
        });
    }
    let next = match (page.is_truncated, page.next_key_marker) {
        (true, Some(k)) => Some((k, page.next_version_id_marker)),
        _ => None,
    };
    Ok((out, next))
}

/// One page of an Azure `List Blobs` answer with versions, snapshots and
/// deleted blobs: the entries under `prefix` (paths relative to it), and the
/// marker of the next page.
///
/// # Errors
/// [`Error::Refused`] for an answer that is not such a page.
pub fn parse_azure_blobs(
    body: &[u8],
    prefix: &str,
) -> Result<(Vec<ObjectVersion>, Option<String>)> {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase")]
    struct Props {
        #[serde(rename = "Content-Length", default)]
        content_length: u64,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Blob {
        name: String,
        snapshot: Option<String>,
        version_id: Option<String>,
        is_current_version: Option<bool>,
        #[serde(default)]
        deleted: bool,
        #[serde(default)]
        properties: Props,
    }
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase")]
    struct Blobs {
        #[serde(default, rename = "Blob")]
        blob: Vec<Blob>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct EnumerationResults {
        #[serde(default)]
        blobs: Blobs,
        next_marker: Option<String>,
    }
    let page: EnumerationResults = xml(body, "List Blobs")?;
    let mut out = Vec::new();
    for b in page.blobs.blob {
        let Some(path) = b.name.strip_prefix(prefix) else {
            continue;
        };
        let (kind, id) = if let Some(s) = b.snapshot {
            (VersionKind::Snapshot, Some(s))
        } else if b.deleted {
            (VersionKind::SoftDeleted, b.version_id)
        } else if b.is_current_version == Some(true) {
            // The current version is deleted as the base blob (Azure
            // refuses its version ID); it then becomes a previous
            // version, listed and deleted in the next round.
            (VersionKind::Version, None)
        } else {
            (VersionKind::Version, b.version_id)
        };
        out.push(ObjectVersion {
            path: path.to_string(),
            version_id: id,
            size: b.properties.content_length,
            kind,
        });
    }
    Ok((out, page.next_marker.filter(|m| !m.is_empty())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_queries_are_encoded_once() {
        assert_eq!(encode_path("t/keys/a b+c"), "t/keys/a%20b%2Bc");
        assert_eq!(encode_query("t/"), "t%2F");
        assert_eq!(
            split("bucket/pre/fix/"),
            ("bucket".into(), "pre/fix/".into())
        );
        assert_eq!(split("bucket"), ("bucket".into(), String::new()));
    }

    #[test]
    fn s3_version_listings_parse() {
        let text = br#"<ListVersionsResult><Name>b</Name><IsTruncated>true</IsTruncated>
            <NextKeyMarker>t/keys/a</NextKeyMarker><NextVersionIdMarker>2</NextVersionIdMarker>
            <Version><Key>t/keys/a</Key><VersionId>1</VersionId><Size>3</Size></Version>
            <DeleteMarker><Key>t/keys/a</Key><VersionId>2</VersionId></DeleteMarker>
            <Version><Key>other/x</Key><VersionId>3</VersionId><Size>3</Size></Version>
            <Version><Key>t/config</Key><VersionId>null</VersionId><Size>9</Size></Version>
            </ListVersionsResult>"#;
        let (v, next) = parse_s3_versions(text, "t/").unwrap();
        let got: Vec<_> = v
            .iter()
            .map(|v| (v.path.as_str(), v.version_id.as_deref(), v.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("keys/a", Some("1"), VersionKind::Version),
                ("keys/a", Some("2"), VersionKind::DeleteMarker),
                ("config", Some("null"), VersionKind::Version),
            ]
        );
        assert_eq!(next, Some(("t/keys/a".into(), Some("2".into()))));
        assert!(parse_s3_versions(b"not xml <", "t/").is_err());
    }

    #[test]
    fn pages_are_followed_and_a_repeated_marker_is_refused() {
        let v = |p: &str| ObjectVersion {
            path: p.into(),
            version_id: None,
            size: 0,
            kind: VersionKind::Version,
        };
        let three = futures::executor::block_on(all_pages("list", |m: Option<u32>| {
            let page = match m {
                None => (vec![v("a")], Some(1)),
                Some(1) => (vec![v("b"), v("c")], Some(2)),
                _ => (vec![], None),
            };
            async move { Ok(page) }
        }))
        .unwrap();
        assert_eq!(three.len(), 3);
        let stuck = futures::executor::block_on(all_pages("list", |_m: Option<u32>| async {
            Ok((vec![v("a")], Some(7)))
        }));
        assert!(stuck.is_err_and(|e| e.to_string().contains("same page twice")));
    }

    #[test]
    fn azure_listings_parse() {
        let text = br#"<EnumerationResults><Blobs>
            <Blob><Name>t/keys/a</Name><VersionId>v1</VersionId><IsCurrentVersion>true</IsCurrentVersion><Properties><Content-Length>5</Content-Length></Properties></Blob>
            <Blob><Name>t/keys/a</Name><VersionId>v0</VersionId><Properties><Content-Length>5</Content-Length></Properties></Blob>
            <Blob><Name>t/data/x</Name><Deleted>true</Deleted><Properties><Content-Length>7</Content-Length></Properties></Blob>
            <Blob><Name>t/data/y</Name><Snapshot>2026-01-01T00:00:00Z</Snapshot><Properties/></Blob>
            </Blobs><NextMarker/></EnumerationResults>"#;
        let (v, next) = parse_azure_blobs(text, "t/").unwrap();
        let got: Vec<_> = v
            .iter()
            .map(|v| (v.path.as_str(), v.version_id.as_deref(), v.kind, v.size))
            .collect();
        assert_eq!(
            got,
            [
                ("keys/a", None, VersionKind::Version, 5),
                ("keys/a", Some("v0"), VersionKind::Version, 5),
                ("data/x", None, VersionKind::SoftDeleted, 7),
                (
                    "data/y",
                    Some("2026-01-01T00:00:00Z"),
                    VersionKind::Snapshot,
                    0
                ),
            ]
        );
        assert_eq!(next, None);
    }
}
