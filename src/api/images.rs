//! Images a client sends with its turn (chat `image_url` data URIs,
//! responses `input_image` base64 sources), checked as the built-in checks
//! them (`input-files` in 2026.9.6) and turned into native attachments:
//! base64 with whitespace dropped, at most 10 MiB decoded each, the type
//! sniffed from the bytes (a declared image type that is really something
//! else is refused), only jpeg, png, gif, webp, heic and heif. The caller
//! bounds the count and the total. Pure.

use base64::Engine;

use crate::gateway::Attachment;

/// `images.maxBytes`: decoded bytes per image.
pub const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;
/// Chat's `maxImageParts` and `maxTotalImageBytes`.
pub const MAX_IMAGE_PARTS: usize = 8;
pub const MAX_TOTAL_IMAGE_BYTES: usize = 20 * 1024 * 1024;

const ALLOWED: [&str; 6] = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/heic", "image/heif"];

/// Why an image was refused (logged; clients get their API's one message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("image_url data URI must be base64 encoded")]
    NotBase64,
    #[error("image data URI is missing payload data")]
    Empty,
    #[error("image base64 source has invalid data")]
    BadBase64,
    #[error("image too large: {0} bytes (limit {MAX_IMAGE_BYTES})")]
    TooLarge(usize),
    #[error("unsupported image MIME type: {0}")]
    Unsupported(String),
    #[error("too many images ({0}; limit {MAX_IMAGE_PARTS})")]
    TooMany(usize),
    #[error("total image payload too large ({0}; limit {MAX_TOTAL_IMAGE_BYTES})")]
    TotalTooLarge(usize),
    /// A remote URL: the built-in fetches none for chat (`images.allowUrl`
    /// is off there); clawbridge fetches none at all.
    #[error("remote image URLs are not fetched")]
    Remote,
}

/// A `data:` URI's media type and base64 payload, as `parseImageUrlToSource`
/// reads it; `Remote` for anything else.
pub fn parse_data_url(url: &str) -> Result<(Option<&str>, &str), ImageError> {
    let Some(rest) = url.get(..5).filter(|p| p.eq_ignore_ascii_case("data:")).map(|_| &url[5..]) else {
        return Err(ImageError::Remote);
    };
    let Some((meta, data)) = rest.split_once(',') else { return Err(ImageError::Remote) };
    let parts: Vec<&str> = meta.split(';').map(str::trim).filter(|p| !p.is_empty()).collect();
    if !parts.iter().any(|p| p.eq_ignore_ascii_case("base64")) {
        return Err(ImageError::NotBase64);
    }
    if data.trim().is_empty() {
        return Err(ImageError::Empty);
    }
    Ok((parts.iter().copied().find(|p| p.contains('/')), data))
}

/// Decoded bytes a base64 text stands for, at most (the built-in's estimate).
pub fn estimated_bytes(data: &str) -> usize {
    let len = data.bytes().filter(|b| !b.is_ascii_whitespace()).count();
    len / 4 * 3 + (len % 4).saturating_sub(1)
}

/// One image as a native attachment.
pub fn attachment(declared: Option<&str>, data: &str) -> Result<Attachment, ImageError> {
    if estimated_bytes(data) > MAX_IMAGE_BYTES {
        return Err(ImageError::TooLarge(estimated_bytes(data)));
    }
    let canonical: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine.decode(&canonical).map_err(|_| ImageError::BadBase64)?;
    if bytes.is_empty() {
        return Err(ImageError::BadBase64);
    }
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(ImageError::TooLarge(bytes.len()));
    }
    let declared = declared.map(|m| m.split(';').next().unwrap_or(m).trim().to_ascii_lowercase());
    let declared = declared.filter(|m| !m.is_empty()).unwrap_or_else(|| "image/png".to_string());
    let detected = infer::get(&bytes).map(|t| t.mime_type().to_string());
    if declared.starts_with("image/") && detected.as_ref().is_some_and(|d| !d.starts_with("image/")) {
        return Err(ImageError::Unsupported(detected.unwrap_or_default()));
    }
    let mime = detected.filter(|d| d.starts_with("image/")).unwrap_or(declared);
    let mime = mime.strip_suffix("-sequence").map(str::to_string).unwrap_or(mime);
    if !ALLOWED.contains(&mime.as_str()) {
        return Err(ImageError::Unsupported(mime));
    }
    Ok(Attachment { kind: "image", mime_type: mime, content: canonical })
}

/// Every image of a turn, in order, within the count and total bounds.
pub fn attachments<'a>(
    sources: impl ExactSizeIterator<Item = (Option<&'a str>, &'a str)>,
) -> Result<Vec<Attachment>, ImageError> {
    if sources.len() > MAX_IMAGE_PARTS {
        return Err(ImageError::TooMany(sources.len()));
    }
    let mut total = 0;
    let mut out = Vec::with_capacity(sources.len());
    for (declared, data) in sources {
        if total + estimated_bytes(data) > MAX_TOTAL_IMAGE_BYTES {
            return Err(ImageError::TotalTooLarge(total + estimated_bytes(data)));
        }
        let a = attachment(declared, data)?;
        total += estimated_bytes(&a.content);
        out.push(a);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid PNG (1x1), as base64.
    pub const PNG: &str =
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

    #[test]
    fn data_urls_as_the_builtin_reads_them() {
        assert_eq!(parse_data_url("data:image/png;base64,AAAA").unwrap(), (Some("image/png"), "AAAA"));
        assert_eq!(parse_data_url("DATA:;base64,AAAA").unwrap(), (None, "AAAA"));
        assert_eq!(parse_data_url("data:image/png,AAAA").unwrap_err(), ImageError::NotBase64);
        assert_eq!(parse_data_url("data:image/png;base64,  ").unwrap_err(), ImageError::Empty);
        assert_eq!(parse_data_url("https://example.com/x.png").unwrap_err(), ImageError::Remote);
    }

    #[test]
    fn sniffed_not_trusted() {
        let a = attachment(Some("image/jpeg"), PNG).unwrap();
        assert_eq!((a.kind, a.mime_type.as_str()), ("image", "image/png"), "the bytes are a PNG");
        let spaced: String = PNG.chars().flat_map(|c| [c, '\n']).collect();
        assert_eq!(attachment(None, &spaced).unwrap().content, PNG, "whitespace dropped");
        let pdf = base64::engine::general_purpose::STANDARD.encode(b"%PDF-1.4\n%abc\n");
        assert!(matches!(attachment(Some("image/png"), &pdf), Err(ImageError::Unsupported(_))));
        assert_eq!(attachment(None, "!!!!").unwrap_err(), ImageError::BadBase64);
        let unknown = base64::engine::general_purpose::STANDARD.encode(b"just bytes");
        assert_eq!(attachment(Some("image/png"), &unknown).unwrap().mime_type, "image/png", "declared type kept");
        assert!(matches!(attachment(Some("text/plain"), &unknown), Err(ImageError::Unsupported(_))));
    }

    #[test]
    fn bounded() {
        let big = "A".repeat((MAX_IMAGE_BYTES / 3 + 2) * 4);
        assert!(matches!(attachment(None, &big), Err(ImageError::TooLarge(_))));
        let nine = vec![(None, PNG); 9];
        assert_eq!(attachments(nine.into_iter()).unwrap_err(), ImageError::TooMany(9));
        assert_eq!(attachments(vec![(None, PNG); 8].into_iter()).unwrap().len(), 8);
    }
}
