//! The schemas this service provider serves (RFC 7643 sections 4, 7 and 8.7):
//! one table of attribute definitions drives `/Schemas`, input validation,
//! filter typing, PATCH paths and `attributes`/`excludedAttributes`.
//!
//! Deliberate departures from the RFC's core schemas, each because of what
//! a SCIM user or group *is* here:
//! * `userName` is the account's email, so it is `immutable`: a SCIM client
//!   of one workspace must not rename an account other workspaces share.
//! * `password` is not offered: SCIM never touches credentials.
//! * Group `displayName` is required (it is the user group's unique name);
//!   group members are users only (`type` "User"), without `display`.

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::String => "string",
            Type::Boolean => "boolean",
            Type::Decimal => "decimal",
            Type::Integer => "integer",
            Type::DateTime => "dateTime",
            Type::Binary => "binary",
            Type::Reference => "reference",
            Type::Complex => "complex",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

#[derive(Debug, Clone, Copy)]
pub struct Attr {
    pub name: &'static str,
    pub ty: Type,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: &'static str,
    pub canonical: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub sub: &'static [Attr],
    pub description: &'static str,
}

const fn attr(name: &'static str, ty: Type, description: &'static str) -> Attr {
    Attr {
        name,
        ty,
        multi: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: "none",
        canonical: &[],
        reference_types: &[],
        sub: &[],
        description,
    }
}

const fn string(name: &'static str, description: &'static str) -> Attr {
    attr(name, Type::String, description)
}

const fn complex(name: &'static str, sub: &'static [Attr], description: &'static str) -> Attr {
    let mut a = attr(name, Type::Complex, description);
    a.sub = sub;
    a
}

const fn multi(mut a: Attr) -> Attr {
    a.multi = true;
    a
}

const fn required(mut a: Attr) -> Attr {
    a.required = true;
    a
}

const fn exact(mut a: Attr) -> Attr {
    a.case_exact = true;
    a
}

const fn read_only(mut a: Attr) -> Attr {
    a.mutability = Mutability::ReadOnly;
    a
}

const fn immutable(mut a: Attr) -> Attr {
    a.mutability = Mutability::Immutable;
    a
}

const fn canonical(mut a: Attr, values: &'static [&'static str]) -> Attr {
    a.canonical = values;
    a
}

const fn reference(name: &'static str, types: &'static [&'static str], d: &'static str) -> Attr {
    let mut a = attr(name, Type::Reference, d);
    a.reference_types = types;
    a.case_exact = true;
    a
}

impl Attr {
    pub fn sub_attr(&self, name: &str) -> Option<&'static Attr> {
        self.sub.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Whether string comparisons on this attribute respect case.
    pub fn compares_case(&self) -> bool {
        self.case_exact || matches!(self.ty, Type::Reference | Type::Binary)
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "type": self.ty.as_str(),
            "multiValued": self.multi,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": match self.mutability {
                Mutability::ReadOnly => "readOnly",
                Mutability::ReadWrite => "readWrite",
                Mutability::Immutable => "immutable",
                Mutability::WriteOnly => "writeOnly",
            },
            "returned": match self.returned {
                Returned::Always => "always",
                Returned::Never => "never",
                Returned::Default => "default",
                Returned::Request => "request",
            },
            "uniqueness": self.uniqueness,
        });
        if !self.canonical.is_empty() {
            v["canonicalValues"] = json!(self.canonical);
        }
        if self.ty == Type::Reference {
            v["referenceTypes"] = json!(self.reference_types);
        }
        if self.ty == Type::Complex {
            v["subAttributes"] = Value::Array(self.sub.iter().map(Attr::to_json).collect());
        }
        v
    }
}

#[derive(Debug)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [Attr],
}

impl Schema {
    pub fn attr(&self, name: &str) -> Option<&'static Attr> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    pub fn to_json(&self, base: &str) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": self.attributes.iter().map(Attr::to_json).collect::<Vec<_>>(),
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{}", self.id)},
        })
    }
}

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

const fn plural(value: Attr, types: &'static [&'static str]) -> [Attr; 4] {
    [
        value,
        string(
            "display",
            "A human-readable name, primarily used for display purposes.",
        ),
        canonical(
            string("type", "A label indicating the attribute's function."),
            types,
        ),
        attr(
            "primary",
            Type::Boolean,
            "Whether this is the preferred value; true at most once.",
        ),
    ]
}

const NAME_SUB: &[Attr] = &[
    string("formatted", "The full name, formatted for display."),
    string("familyName", "The family name, or last name."),
    string("givenName", "The given name, or first name."),
    string("middleName", "The middle name(s)."),
    string("honorificPrefix", "The honorific prefix(es), or title."),
    string("honorificSuffix", "The honorific suffix(es)."),
];
const EMAIL_SUB: &[Attr] = &plural(
    string("value", "An email address."),
    &["work", "home", "other"],
);
const PHONE_SUB: &[Attr] = &plural(
    string("value", "A phone number."),
    &["work", "home", "mobile", "fax", "pager", "other"],
);
const IM_SUB: &[Attr] = &plural(
    string("value", "An instant messaging address."),
    &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
);
const PHOTO_SUB: &[Attr] = &plural(
    reference("value", &["external"], "The URL of a photo."),
    &["photo", "thumbnail"],
);
const ADDRESS_SUB: &[Attr] = &[
    string(
        "formatted",
        "The full mailing address, formatted for display.",
    ),
    string("streetAddress", "The street address."),
    string("locality", "The city or locality."),
    string("region", "The state or region."),
    string("postalCode", "The zip code or postal code."),
    string("country", "The country name (ISO 3166-1 alpha-2 code)."),
    canonical(
        string("type", "A label indicating the address's function."),
        &["work", "home", "other"],
    ),
    attr(
        "primary",
        Type::Boolean,
        "Whether this is the preferred address.",
    ),
];
const USER_GROUP_SUB: &[Attr] = &[
    read_only(exact(string("value", "The id of the group."))),
    read_only(reference("$ref", &["Group"], "The URI of the group.")),
    read_only(string("display", "The name of the group.")),
    read_only(canonical(
        string("type", "How the user is a member."),
        &["direct", "indirect"],
    )),
];
const GENERIC_SUB: &[Attr] = &plural(string("value", "The value."), &[]);
const CERT_SUB: &[Attr] = &plural(
    attr(
        "value",
        Type::Binary,
        "A DER-encoded X.509 certificate (base64).",
    ),
    &[],
);

pub const USER_ATTRS: &[Attr] = &[
    {
        let mut a = immutable(required(string(
            "userName",
            "The person's email address: the account's sign-in name. Unique.",
        )));
        a.uniqueness = "server";
        a
    },
    complex("name", NAME_SUB, "The components of the user's real name."),
    string("displayName", "The name of the user, suitable for display."),
    string("nickName", "The casual way to address the user."),
    reference("profileUrl", &["external"], "A URI to the user's online profile."),
    string("title", "The user's title, such as \"Vice President\"."),
    string("userType", "The relationship between the organization and the user."),
    string("preferredLanguage", "The user's preferred written or spoken language."),
    string("locale", "The user's default location for localization."),
    string("timezone", "The user's time zone, in IANA format."),
    attr(
        "active",
        Type::Boolean,
        "Whether the user is a member of the workspace; false or DELETE removes the membership.",
    ),
    multi(complex("emails", EMAIL_SUB, "Email addresses for the user.")),
    multi(complex("phoneNumbers", PHONE_SUB, "Phone numbers for the user.")),
    multi(complex("ims", IM_SUB, "Instant messaging addresses for the user.")),
    multi(complex("photos", PHOTO_SUB, "URLs of photos of the user.")),
    multi(complex("addresses", ADDRESS_SUB, "Physical mailing addresses.")),
    read_only(multi(complex(
        "groups",
        USER_GROUP_SUB,
        "The user groups of the workspace the user belongs to.",
    ))),
    multi(complex("entitlements", GENERIC_SUB, "Entitlements of the user.")),
    multi(complex("roles", GENERIC_SUB, "Roles as the identity provider names them (informational: workspace roles come from groups and the default role).")),
    multi(complex("x509Certificates", CERT_SUB, "Certificates issued to the user.")),
];

const MANAGER_SUB: &[Attr] = &[
    string("value", "The id of the manager's SCIM resource."),
    reference("$ref", &["User"], "The URI of the manager's SCIM resource."),
    read_only(string("displayName", "The manager's display name.")),
];

pub const ENTERPRISE_ATTRS: &[Attr] = &[
    string(
        "employeeNumber",
        "A string identifier, typically numeric or alphanumeric, assigned to a person.",
    ),
    string("costCenter", "Identifies the name of a cost center."),
    string("organization", "Identifies the name of an organization."),
    string("division", "Identifies the name of a division."),
    string("department", "Identifies the name of a department."),
    complex("manager", MANAGER_SUB, "The user's manager."),
];

const MEMBER_SUB: &[Attr] = &[
    immutable(exact(string(
        "value",
        "The id of a user of this workspace.",
    ))),
    immutable(reference(
        "$ref",
        &["User"],
        "The URI of the member's SCIM resource.",
    )),
    immutable(canonical(
        string("type", "The type of member: users only."),
        &["User"],
    )),
];

pub const GROUP_ATTRS: &[Attr] = &[
    {
        let mut a = required(string(
            "displayName",
            "The group's name, unique in the workspace.",
        ));
        a.uniqueness = "server";
        a
    },
    multi(complex("members", MEMBER_SUB, "The users in the group.")),
];

const META_SUB: &[Attr] = &[
    read_only(exact(string("resourceType", "The resource type."))),
    read_only(attr(
        "created",
        Type::DateTime,
        "When the resource was added.",
    )),
    read_only(attr(
        "lastModified",
        Type::DateTime,
        "When the resource was last changed.",
    )),
    read_only(reference("location", &["uri"], "The URI of the resource.")),
    read_only(exact(string(
        "version",
        "The version (weak ETag) of the resource.",
    ))),
];

/// Attributes every resource has (RFC 7643 section 3.1), outside any schema.
pub const COMMON_ATTRS: &[Attr] = &[
    {
        let mut a = read_only(exact(string("id", "The resource's identifier.")));
        a.returned = Returned::Always;
        a.uniqueness = "server";
        a
    },
    exact(string(
        "externalId",
        "The identifier the provisioning client uses.",
    )),
    read_only(complex("meta", META_SUB, "Resource metadata.")),
];

pub static USER: Schema = Schema {
    id: USER_SCHEMA,
    name: "User",
    description: "A person with access to the workspace.",
    attributes: USER_ATTRS,
};
pub static ENTERPRISE: Schema = Schema {
    id: ENTERPRISE_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: ENTERPRISE_ATTRS,
};
pub static GROUP: Schema = Schema {
    id: GROUP_SCHEMA,
    name: "Group",
    description: "A user group of the workspace; its roles apply to its members.",
    attributes: GROUP_ATTRS,
};

pub static ALL_SCHEMAS: [&Schema; 3] = [&USER, &ENTERPRISE, &GROUP];

/// A resource type: its core schema and extensions.
pub struct ResourceDef {
    pub name: &'static str,
    pub endpoint: &'static str,
    pub description: &'static str,
    pub core: &'static Schema,
    pub extensions: &'static [&'static Schema],
}

pub static USER_TYPE: ResourceDef = ResourceDef {
    name: "User",
    endpoint: "/Users",
    description: "A member of the workspace (userName is the email).",
    core: &USER,
    extensions: &[&ENTERPRISE],
};
pub static GROUP_TYPE: ResourceDef = ResourceDef {
    name: "Group",
    endpoint: "/Groups",
    description: "A user group of the workspace.",
    core: &GROUP,
    extensions: &[],
};

impl ResourceDef {
    pub fn to_json(&self, base: &str) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.description,
            "schema": self.core.id,
            "schemaExtensions": self.extensions.iter().map(|e| json!({"schema": e.id, "required": false})).collect::<Vec<_>>(),
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", self.name)},
        })
    }

    /// A core or common attribute by name (case-insensitive).
    pub fn core_attr(&self, name: &str) -> Option<&'static Attr> {
        self.core.attr(name).or_else(|| {
            COMMON_ATTRS
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case(name))
        })
    }

    /// The extension whose URN this is (case-insensitive).
    pub fn extension(&self, urn: &str) -> Option<&'static Schema> {
        self.extensions
            .iter()
            .copied()
            .find(|e| e.id.eq_ignore_ascii_case(urn))
    }
}

pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://datatracker.ietf.org/doc/html/rfc7644",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": super::resources::MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A workspace's SCIM token (iamgw_scim_...) in the Authorization header.",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })
}
