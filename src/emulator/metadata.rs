//! `GET /api/$metadata`: the service's EDMX (CSDL v3), written from the same set descriptions
//! the routes serve, so it lists exactly what is emulated: entity types in
//! `Microsoft.Cloud.Media.Vod.Rest.Data.Models` with their properties' EDM types, navigation
//! properties with their associations, and the `WindowsAzureMediaServices` container's entity
//! sets and function imports.

use super::atom::edm_type;
use super::odata::SetInfo;
use super::{
    assets, endpoints, files, jobs, locators, notifications, policies, processors, protection,
};

const NAMESPACE: &str = "Microsoft.Cloud.Media.Vod.Rest.Data.Models";
const CONTAINER: &str = "WindowsAzureMediaServices";

/// Every entity set served.
pub const SETS: [&SetInfo; 11] = [
    &policies::INFO,
    &locators::INFO,
    &files::INFO,
    &assets::INFO,
    &processors::INFO,
    &jobs::JOBS,
    &jobs::TASKS,
    &endpoints::INFO,
    &endpoints::OPERATIONS,
    &notifications::INFO,
    &protection::INFO,
];

/// Where each navigation property leads: (set, property, target set, many).
const NAVIGATION: [(&str, &str, &str, bool); 12] = [
    ("Assets", "Locators", "Locators", true),
    ("Assets", "ContentKeys", "ContentKeys", true),
    ("Assets", "Files", "Files", true),
    ("Assets", "ParentAssets", "Assets", true),
    ("Files", "ParentAsset", "Assets", false),
    ("Locators", "AccessPolicy", "AccessPolicies", false),
    ("Locators", "Asset", "Assets", false),
    ("Jobs", "Tasks", "Tasks", true),
    ("Jobs", "InputMediaAssets", "Assets", true),
    ("Jobs", "OutputMediaAssets", "Assets", true),
    ("Tasks", "InputMediaAssets", "Assets", true),
    ("Tasks", "OutputMediaAssets", "Assets", true),
];

/// Names and EDM types (of fields, of parameters).
type Typed = &'static [(&'static str, &'static str)];

/// Complex types of collection-valued properties: (property, type, its fields).
const COMPLEX: [(&str, &str, Typed); 4] = [
    (
        "ErrorDetails",
        "ErrorDetail",
        &[("Code", "Edm.String"), ("Message", "Edm.String")],
    ),
    (
        "HistoricalEvents",
        "TaskHistoricalEvent",
        &[
            ("Code", "Edm.String"),
            ("Message", "Edm.String"),
            ("TimeStamp", "Edm.DateTime"),
        ],
    ),
    (
        "JobNotificationSubscriptions",
        "JobNotificationSubscription",
        &[
            ("NotificationEndPointId", "Edm.String"),
            ("TargetJobState", "Edm.Int32"),
        ],
    ),
    (
        "TaskNotificationSubscriptions",
        "TaskNotificationSubscription",
        &[
            ("NotificationEndPointId", "Edm.String"),
            ("TargetTaskState", "Edm.Int32"),
            ("IncludeTaskProgress", "Edm.Boolean"),
        ],
    ),
];

/// Service functions: (name, HTTP method, parameters, return type).
const FUNCTIONS: [(&str, &str, Typed, Option<&str>); 5] = [
    ("CreateFileInfos", "GET", &[("assetid", "Edm.String")], None),
    ("CancelJob", "GET", &[("jobid", "Edm.String")], None),
    (
        "GetProtectionKeyId",
        "GET",
        &[("contentKeyType", "Edm.Int32")],
        Some("Edm.String"),
    ),
    (
        "GetProtectionKey",
        "GET",
        &[("protectionKeyId", "Edm.String")],
        Some("Edm.String"),
    ),
    (
        "RebindContentKey",
        "GET",
        &[("id", "Edm.String"), ("x509Certificate", "Edm.String")],
        Some("Edm.String"),
    ),
];

fn short(info: &SetInfo) -> &'static str {
    info.type_name.rsplit('.').next().unwrap_or(info.name)
}

fn set(name: &str) -> Option<&'static SetInfo> {
    SETS.iter().copied().find(|s| s.name == name)
}

/// The EDMX document.
pub fn edmx() -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"yes\"?><edmx:Edmx Version=\"1.0\" xmlns:edmx=\"http://schemas.microsoft.com/ado/2007/06/edmx\"><edmx:DataServices m:DataServiceVersion=\"3.0\" m:MaxDataServiceVersion=\"3.0\" xmlns:m=\"http://schemas.microsoft.com/ado/2007/08/dataservices/metadata\">",
    );
    s.push_str(&format!(
        "<Schema Namespace=\"{NAMESPACE}\" xmlns=\"http://schemas.microsoft.com/ado/2009/11/edm\">"
    ));
    for info in SETS {
        s.push_str(&format!(
            "<EntityType Name=\"{}\"><Key><PropertyRef Name=\"Id\" /></Key>",
            short(info)
        ));
        for p in info.properties {
            let complex = COMPLEX.iter().find(|(name, _, _)| name == p);
            let (t, nullable) = match complex {
                Some((_, t, _)) => (format!("Collection({NAMESPACE}.{t})"), false),
                None => {
                    let t = edm_type(p).unwrap_or("Edm.String");
                    let nullable = *p != "Id" && matches!(t, "Edm.String" | "Edm.DateTime");
                    (t.to_string(), nullable)
                }
            };
            s.push_str(&format!(
                "<Property Name=\"{p}\" Type=\"{t}\" Nullable=\"{nullable}\" />"
            ));
        }
        for (from, nav, _, _) in NAVIGATION.iter().filter(|(f, ..)| *f == info.name) {
            s.push_str(&format!(
                "<NavigationProperty Name=\"{nav}\" Relationship=\"{NAMESPACE}.{}_{nav}\" FromRole=\"{}\" ToRole=\"{nav}\" />",
                short(info),
                short(set(from).unwrap_or(info))
            ));
        }
        s.push_str("</EntityType>");
    }
    for (_, t, fields) in COMPLEX {
        s.push_str(&format!("<ComplexType Name=\"{t}\">"));
        for (f, ft) in fields {
            s.push_str(&format!("<Property Name=\"{f}\" Type=\"{ft}\" />"));
        }
        s.push_str("</ComplexType>");
    }
    for (from, nav, to, many) in NAVIGATION {
        let (Some(f), Some(t)) = (set(from), set(to)) else {
            continue;
        };
        s.push_str(&format!(
            "<Association Name=\"{}_{nav}\"><End Type=\"{}\" Role=\"{}\" Multiplicity=\"*\" /><End Type=\"{}\" Role=\"{nav}\" Multiplicity=\"{}\" /></Association>",
            short(f),
            f.type_name,
            short(f),
            t.type_name,
            if many { "*" } else { "0..1" }
        ));
    }
    s.push_str(&format!(
        "</Schema><Schema Namespace=\"{CONTAINER}\" xmlns=\"http://schemas.microsoft.com/ado/2009/11/edm\"><EntityContainer Name=\"{CONTAINER}\" m:IsDefaultEntityContainer=\"true\">"
    ));
    for info in SETS {
        s.push_str(&format!(
            "<EntitySet Name=\"{}\" EntityType=\"{}\" />",
            info.name, info.type_name
        ));
    }
    for (from, nav, to, _) in NAVIGATION {
        let (Some(f), Some(_)) = (set(from), set(to)) else {
            continue;
        };
        s.push_str(&format!(
            "<AssociationSet Name=\"{}_{nav}\" Association=\"{NAMESPACE}.{}_{nav}\"><End Role=\"{}\" EntitySet=\"{from}\" /><End Role=\"{nav}\" EntitySet=\"{to}\" /></AssociationSet>",
            short(f),
            short(f),
            short(f)
        ));
    }
    for (name, method, params, returns) in FUNCTIONS {
        let returns = returns
            .map(|r| format!(" ReturnType=\"{r}\""))
            .unwrap_or_default();
        s.push_str(&format!(
            "<FunctionImport Name=\"{name}\"{returns} m:HttpMethod=\"{method}\">"
        ));
        for (p, t) in params {
            s.push_str(&format!("<Parameter Name=\"{p}\" Type=\"{t}\" />"));
        }
        s.push_str("</FunctionImport>");
    }
    s.push_str("</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>");
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_set_and_navigation_is_described() {
        let x = super::edmx();
        for info in super::SETS {
            assert!(
                x.contains(&format!("<EntitySet Name=\"{}\"", info.name)),
                "{}",
                info.name
            );
            for nav in info.navigation {
                if super::NAVIGATION
                    .iter()
                    .any(|(f, n, ..)| *f == info.name && n == nav)
                {
                    assert!(
                        x.contains(&format!("<NavigationProperty Name=\"{nav}\"")),
                        "{nav}"
                    );
                }
            }
        }
        assert!(x.contains("<Property Name=\"ContentFileSize\" Type=\"Edm.Int64\""));
        assert!(x.contains(
            "Type=\"Collection(Microsoft.Cloud.Media.Vod.Rest.Data.Models.ErrorDetail)\""
        ));
        // Well-formed: every element read to the end.
        let mut r = quick_xml::Reader::from_str(&x);
        loop {
            match r.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
}
