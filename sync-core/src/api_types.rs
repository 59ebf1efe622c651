//! The REST API's wire types, defined once for the server and the phone library: the error
//! body and its codes, the login, setup and refresh requests, the password length, the token
//! grant, and the reference data a device downloads for its user.
//!
//! Every non-2xx answer of the server is an [`ErrorBody`], `{"error": code, "message": text}`.
//! The code is an [`ErrorCode`]: its wire strings are stable (clients match on them, and a
//! phone in the field may be years older than the server), so a variant is never renamed; a
//! code the phone does not know yet (a newer server) is kept as [`ErrorCode::Other`].
//!
//! With the `openapi` feature the types describe themselves for the server's `/openapi.json`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{Asset, Category, CheckItem, Division, User};
use crate::rules::RuleSet;

macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $wire:literal,)*) => {
        /// The machine-readable code of an error answer; see the module overview.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
            /// A code this build does not name (sent by a newer server), kept as sent.
            Other(String),
        }

        impl ErrorCode {
            /// Every code this build names, in declaration order.
            pub const KNOWN: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it travels.
            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorCode::$variant => $wire,)*
                    ErrorCode::Other(code) => code,
                }
            }

            /// The code a wire string names; an unknown one becomes [`ErrorCode::Other`].
            pub fn from_wire(code: &str) -> ErrorCode {
                match code {
                    $($wire => ErrorCode::$variant,)*
                    other => ErrorCode::Other(other.to_owned()),
                }
            }
        }
    };
}

error_codes! {
    // Any request.
    /// The request cannot be read: a parameter, header or body the endpoint does not accept.
    BadRequest = "bad_request",
    /// No route serves this path.
    NoRoute = "no_route",
    /// The path is served, but not with this method; `Allow` lists the methods.
    MethodNotAllowed = "method_not_allowed",
    /// The body is larger than the endpoint takes.
    PayloadTooLarge = "payload_too_large",
    /// The body is not of the content type the endpoint takes.
    UnsupportedMediaType = "unsupported_media_type",
    /// The request body arrived too slowly; the connection is closed.
    BodyTooSlow = "body_too_slow",
    /// The server is busy; send the same request again after `Retry-After`.
    Overloaded = "overloaded",
    /// Too many attempts; retry after `Retry-After`.
    RateLimited = "rate_limited",
    /// The server failed; nothing of the request is to be trusted as done.
    Internal = "internal",
    /// The server's database cannot be reached for now (restarting, failing over), or another
    /// server saved the same document meanwhile: nothing of the request was done; send it
    /// again after `Retry-After`.
    Unavailable = "unavailable",
    /// Another sync of this device is still being answered (the phone sent again while its
    /// first request was being answered): nothing of this one was done; send it again after
    /// `Retry-After`.
    SyncInProgress = "sync_in_progress",
    // Sign-in and tokens (401).
    /// No `Authorization` header.
    MissingToken = "missing_token",
    /// The access token cannot be read.
    InvalidToken = "invalid_token",
    /// The access token has expired: refresh it.
    TokenExpired = "token_expired",
    /// The access token's `nbf` lies in the future.
    TokenNotYetValid = "token_not_yet_valid",
    /// A token claim is missing or has the wrong type.
    InvalidClaim = "invalid_claim",
    /// The token was made for another audience.
    InvalidAudience = "invalid_audience",
    /// The token was made by another issuer.
    InvalidIssuer = "invalid_issuer",
    /// The token's signature is wrong.
    InvalidSignature = "invalid_signature",
    /// The token is signed with another algorithm than HS256.
    InvalidAlgorithm = "invalid_algorithm",
    /// The token is signed with a key the server does not hold.
    UnknownKey = "unknown_key",
    /// Wrong username or password.
    InvalidCredentials = "invalid_credentials",
    /// The refresh token is unknown or expired.
    InvalidRefreshToken = "invalid_refresh_token",
    /// The refresh token was used before; the device has been signed out.
    RefreshTokenReused = "refresh_token_reused",
    /// The device's session has ended (revoked or signed out).
    DeviceRevoked = "device_revoked",
    /// The account is not active.
    UserInactive = "user_inactive",
    // Decisions on the request.
    /// The caller may not do this.
    Forbidden = "forbidden",
    /// Unknown, or outside the caller's scope (the two answer alike).
    NotFound = "not_found",
    /// It exists already, or the request contradicts what is stored.
    Conflict = "conflict",
    /// A workflow action not allowed in the issue's status; `allowed` lists the next steps.
    InvalidTransition = "invalid_transition",
    /// A workflow action whose payload is unusable (e.g. a rejection without a reason).
    InvalidPayload = "invalid_payload",
    /// An administrator's setting (patrol rules, categories, check items) that cannot take
    /// effect; the message names the field.
    InvalidSetting = "invalid_setting",
    /// An `Idempotency-Key` used before for another action.
    IdempotencyKeyReused = "idempotency_key_reused",
    // Photos.
    /// A chunk of a photo that starts elsewhere than where the server's copy ends.
    OffsetMismatch = "offset_mismatch",
    /// The bytes do not hash to the photo's name.
    HashMismatch = "hash_mismatch",
    /// The bytes are not an image.
    NotAnImage = "not_an_image",
    /// An image format the server does not take.
    UnsupportedImage = "unsupported_image",
    /// An image that cannot be decoded.
    CorruptImage = "corrupt_image",
    /// An image with too many pixels.
    ImageTooLarge = "image_too_large",
    /// The user's photo bytes for today are used up; retry after `Retry-After`.
    PhotoQuotaExceeded = "photo_quota_exceeded",
    // The sync protocol (`protocol::ProtocolError::code`).
    /// A sync message larger than the protocol allows.
    TooLarge = "too_large",
    /// Not a sync message.
    BadMagic = "bad_magic",
    /// A sync protocol version the server does not speak.
    UnsupportedVersion = "unsupported_version",
    /// A sync message that cannot be decoded.
    Malformed = "malformed",
    /// A document named twice in one sync message.
    DuplicateDocument = "duplicate_document",
    /// More documents in one sync message than allowed.
    TooManyDocuments = "too_many_documents",
    /// More changes in one sync message than allowed.
    TooManyChanges = "too_many_changes",
    /// A document id that is not one.
    BadDocumentId = "bad_document_id",
    // The hub (`hub::HubError::code`).
    /// An automerge change that cannot be decoded.
    MalformedChange = "malformed_change",
    /// An automerge sync message that cannot be decoded.
    MalformedMessage = "malformed_message",
    /// A stored document is damaged.
    Damaged = "damaged",
    /// The document store failed.
    Storage = "storage",
    // Size limits (`hub::limits::LimitError::code`).
    /// One change is too large.
    ChangeTooLarge = "change_too_large",
    /// One change holds too many operations.
    TooManyOps = "too_many_ops",
    /// A string longer than allowed.
    StringTooLong = "string_too_long",
    /// Values nested too deep.
    TooDeep = "too_deep",
    /// The document would grow too large.
    DocumentTooLarge = "document_too_large",
    /// An automerge sync message too large.
    SyncMessageTooBig = "sync_message_too_big",
    /// One request holds too many operations.
    RequestTooManyOps = "request_too_many_ops",
    /// The answer would be too large.
    AnswerTooLarge = "answer_too_large",
    // Refused changes (`authz::Refusal::code`).
    /// The automerge actor is not bound to this user and device.
    ActorNotBound = "actor_not_bound",
    /// The author's account is not active.
    InactiveUser = "inactive_user",
    /// The document does not follow the schema.
    Schema = "schema",
    /// A field that never changes was changed.
    ImmutableField = "immutable_field",
    /// A change rewrites recorded history.
    HistoryRewrite = "history_rewrite",
    /// The document lies outside the author's scope.
    OutOfScope = "out_of_scope",
    /// Only the document's owner may change it.
    NotOwner = "not_owner",
    /// An event claims another author.
    ForgedAuthor = "forged_author",
    /// An event id used twice.
    DuplicateEvent = "duplicate_event",
    /// What only the server may write.
    ServerOnly = "server_only",
    /// A record placed against the wrong division, asset or system.
    Misplaced = "misplaced",
    /// An event claims another device.
    ForgedDevice = "forged_device",
    /// A workflow step not allowed.
    Transition = "transition",
    /// The change depends on a refused change.
    DependsOnRefused = "depends_on_refused",
    /// The change's operation counter jumps further than what it was made on justifies.
    OpCounterJump = "op_counter_jump",

    // The public channel (resident reports behind a signboard's QR code).
    /// No asset by that id takes public reports.
    UnknownAsset = "unknown_asset",
    /// No report has that tracking code.
    UnknownCode = "unknown_code",
    /// The asset's system takes no reports of that kind here.
    NotReportable = "not_reportable",
    /// A ticket needs the answer to a challenge.
    ProofOfWorkRequired = "proof_of_work_required",
    /// The answer to the challenge is wrong, or the challenge unknown, used or expired.
    ProofOfWorkInvalid = "proof_of_work_invalid",
    /// The report ticket is unknown, spent, expired or for another asset.
    TicketInvalid = "ticket_invalid",
    /// More photos than a report may carry.
    TooManyPhotos = "too_many_photos",
    /// A photo the report names was not uploaded with its ticket.
    PhotoMissing = "photo_missing",
    /// "Not satisfied" needs a reason.
    ReasonRequired = "reason_required",
    /// A text field is longer than its limit.
    FieldTooLong = "field_too_long",
    /// The phone number is not one.
    BadPhone = "bad_phone",
    /// The category is not one of the asset's system.
    UnknownCategory = "unknown_category",
    /// The reported position is too far from the asset.
    FarFromAsset = "far_from_asset",
    /// Too many requests from this client address; retry later.
    RateLimitedAddress = "rate_limited_address",
    /// Too many reports on this asset; retry later.
    RateLimitedAsset = "rate_limited_asset",
    /// The server has no CJK font to lay out a signboard PDF (the SVG still serves).
    SignboardFontMissing = "signboard_font_missing",
    /// A report may be rated only once it is finished.
    NotFinished = "not_finished",
    /// The report has been rated already.
    AlreadyAnswered = "already_answered",

    // Administration and first sign-in.
    /// An import file that cannot be read (not XLSX/CSV/GeoJSON/Shapefile, or damaged).
    BadImportFile = "bad_import_file",
    /// An import with refused rows is not applied; the dry run names them.
    ImportRefused = "import_refused",
    /// The setup code is wrong, used or expired.
    InvalidSetupCode = "invalid_setup_code",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(ErrorCode::from_wire(&code))
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `invalid_token` or `not_found`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub error: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
}

/// A sign-in: `POST /api/v1/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// A stable id the app chose for this installation: 1-128 letters, digits, `-`, `_`, `.`,
    /// `:`.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9._:\-]{1,128}$"))]
    pub device_id: String,
}

/// The fewest characters of a password someone sets (a new account, a reset, a first sign-in
/// with a setup code): the server refuses shorter ones, and the phone says so before sending.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Whether `password` is long enough to be set ([`MIN_PASSWORD_CHARS`], counted in
/// characters, so a Chinese passphrase counts as it reads).
pub fn password_long_enough(password: &str) -> bool {
    password.chars().count() >= MIN_PASSWORD_CHARS
}

/// The first sign-in with a one-time setup code from the office: `POST /api/v1/auth/setup`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetupRequest {
    pub username: String,
    /// The one-time code from the office (`XXXX-XXXX-XXXX`; case and dashes do not matter).
    pub code: String,
    /// The password the person chooses, at least [`MIN_PASSWORD_CHARS`] characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 8))]
    pub password: String,
    /// As in [`LoginRequest`].
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9._:\-]{1,128}$"))]
    pub device_id: String,
}

/// A refresh token handed back: `POST /api/v1/auth/refresh` and `/auth/logout`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// A granted token pair, with who it is for and the automerge actor id of this (user, device).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenGrant {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub user: User,
    pub device_id: String,
    /// 32 hex characters; the device writes its automerge changes under this actor id.
    pub actor_id: String,
}

/// The reference data of a user's jurisdiction, as `GET /api/v1/reference` sends it and the
/// phone keeps it for working offline: the divisions (with their ancestors, for names), the
/// assets with their geometry, the problem categories and check items of the user's system,
/// and the patrol rules. Which records a user sees is the server's decision; this is only the
/// shape. A field missing from the body (an older server) reads as empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReferenceData {
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub divisions: Vec<Division>,
    /// Assets with GeoJSON geometry.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub assets: Vec<Asset>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub categories: Vec<Category>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub check_items: Vec<CheckItem>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub rules: RuleSet,
}

impl ReferenceData {
    /// The asset `id`, if it is in this reference data.
    pub fn asset(&self, id: &str) -> Option<&Asset> {
        self.assets.iter().find(|a| a.id == id)
    }
}

/// Reads a JSON integer as JSON Schema counts them: a number without a fractional part, so
/// `1.0` is `1` (as `/openapi.json`'s `type: integer` promises), while `1.5` or a number beyond
/// `i64` is refused.
pub fn json_integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    use serde::de::{Error, Unexpected};
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Whole(i64),
        Float(f64),
    }
    match Number::deserialize(deserializer)? {
        Number::Whole(n) => Ok(n),
        // 2^63 as f64 is the first value beyond i64.
        Number::Float(f) if f.fract() == 0.0 && f >= -(2f64.powi(63)) && f < 2f64.powi(63) => {
            Ok(f as i64)
        }
        Number::Float(f) => Err(D::Error::invalid_value(
            Unexpected::Float(f),
            &"a whole number",
        )),
    }
}

/// The schema of [`crate::model::Geometry`], written out because a derived one would not say
/// that a position is exactly `[longitude, latitude]`.
#[cfg(feature = "openapi")]
mod geometry_schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
    use utoipa::openapi::RefOr;

    use crate::model::Geometry;

    fn position() -> ArrayBuilder {
        ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::Number))
            .min_items(Some(2))
            .max_items(Some(2))
            .description(Some("[longitude, latitude] in WGS84"))
    }

    fn shape(name: &str, coordinates: ArrayBuilder) -> ObjectBuilder {
        ObjectBuilder::new()
            .property(
                "type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([name])),
            )
            .required("type")
            .property("coordinates", coordinates)
            .required("coordinates")
    }

    impl utoipa::PartialSchema for Geometry {
        fn schema() -> RefOr<Schema> {
            OneOfBuilder::new()
                .item(shape("LineString", ArrayBuilder::new().items(position())))
                .item(shape(
                    "Polygon",
                    ArrayBuilder::new().items(ArrayBuilder::new().items(position())),
                ))
                .description(Some(
                    "GeoJSON LineString (a river segment or route) or Polygon (an outer ring, then holes)",
                ))
                .into()
        }
    }

    impl utoipa::ToSchema for Geometry {}
}

/// The schema of [`crate::workflow::Assignee`], written out because a derived one would let an
/// object name both a department and a user, or carry other keys: it is exactly one key.
#[cfg(feature = "openapi")]
mod assignee_schema {
    use utoipa::openapi::schema::{
        AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type,
    };
    use utoipa::openapi::RefOr;

    use crate::workflow::Assignee;

    fn one_key(key: &str, description: &str) -> ObjectBuilder {
        ObjectBuilder::new()
            .property(
                key,
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(description)),
            )
            .required(key)
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
    }

    impl utoipa::PartialSchema for Assignee {
        fn schema() -> RefOr<Schema> {
            OneOfBuilder::new()
                .item(one_key(
                    "department",
                    "A responsible department (e.g. 区水务局); any handler of that department acts for it.",
                ))
                .item(one_key(
                    "user",
                    "One user, e.g. the village chief told to clear the rubbish himself.",
                ))
                .description(Some("Who is told to rectify an issue."))
                .into()
        }
    }

    impl utoipa::ToSchema for Assignee {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_code_travels_as_its_own_string_and_back() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::KNOWN {
            let wire = serde_json::to_string(code).unwrap();
            assert!(seen.insert(wire.clone()), "{wire} named twice");
            let back: ErrorCode = serde_json::from_str(&wire).unwrap();
            assert_eq!(&back, code);
            assert!(!matches!(back, ErrorCode::Other(_)));
            let plain = code.as_str();
            assert!(
                plain.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{plain} is not snake_case"
            );
        }
    }

    #[test]
    fn the_wire_strings_clients_match_on_are_unchanged() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":"token_expired","message":"token expired"}"#).unwrap();
        assert_eq!(body.error, ErrorCode::TokenExpired);
        assert_eq!(ErrorCode::NoRoute.as_str(), "no_route");
        assert_eq!(ErrorCode::Overloaded.as_str(), "overloaded");
        assert_eq!(
            serde_json::to_value(&ErrorBody {
                error: ErrorCode::InvalidTransition,
                message: "m".into()
            })
            .unwrap(),
            serde_json::json!({"error": "invalid_transition", "message": "m"})
        );
    }

    #[test]
    fn a_whole_number_written_with_a_point_is_an_integer_as_the_schema_says() {
        use crate::workflow::Action;
        let read = |deadline: &str| {
            serde_json::from_str::<Action>(&format!(
                r#"{{"kind":"assigned","assignee":{{"user":"u-1"}},"deadline_ms":{deadline}}}"#
            ))
        };
        for (text, value) in [("5", 5), ("-337036.0", -337036), ("1e3", 1000)] {
            match read(text).unwrap() {
                Action::Assigned { deadline_ms, .. } => assert_eq!(deadline_ms, value, "{text}"),
                other => panic!("{other:?}"),
            }
        }
        assert!(read("5.5").is_err());
        assert!(read("1e300").is_err());
        assert!(read("\"5\"").is_err());
    }

    #[test]
    fn a_code_from_a_newer_server_is_kept_as_sent() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":"some_new_code","message":"m"}"#).unwrap();
        assert_eq!(body.error, ErrorCode::Other("some_new_code".into()));
        assert_eq!(
            serde_json::to_string(&body.error).unwrap(),
            r#""some_new_code""#
        );
    }

    #[test]
    fn the_domains_error_codes_are_named() {
        use crate::limits::LimitError;
        use crate::protocol::ProtocolError;
        let codes = [
            ProtocolError::BadMagic.code(),
            ProtocolError::Malformed("x".into()).code(),
            LimitError::Unreadable.code(),
        ];
        for code in codes {
            assert!(
                !matches!(ErrorCode::from_wire(code), ErrorCode::Other(_)),
                "{code} is not named"
            );
        }
    }
}
