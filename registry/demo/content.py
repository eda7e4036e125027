"""Demo data: Ferncastle Teamworks, a fictional project-management SaaS in Warsaw.

Pure data, no logic. Every company, vendor, person, address and domain below is
fictional; the domains use the reserved ``.example`` top-level domain. Times are
relative to the moment the demo is loaded ("days ago" / "in days").

Timeline of the story told by the data (days before the demo is loaded):

    1060  launch: first versions of all documents, initial sub-processors
     820  CRM added
     700  enterprise single sign-on launched (Keystile)
     640  payment provider adds fraud screening in the UK
     560  DPA v2 (14-day sub-processor notice), live chat added
     540  analytics moved from a US vendor to an EU vendor, Cookie Policy v2
     520  AI Assistant launched: Privacy Policy v2, Terms v2, two AI vendors
     500  former US analytics vendor removed
     410  US email vendor moves to the EU-US Data Privacy Framework
     400  AI model vendor moves to the EU-US Data Privacy Framework
     320  phone support with call recording (help desk data categories)
     300  AI Meeting Notes launched, disaster-recovery region: Privacy Policy v3
     250  live chat vendor changes address
     180  Cookie Policy v3 (section moved, typo fixes only)
     150  backup vendor changes address
     130  new EU email provider added alongside the US one
      70  analytics vendor renamed after an acquisition
      45  US email provider removed
      35  Terms v3 (wording fixes only)
      30  CDN edge locations added in the US and Singapore
      14  log management adds a second EU region
    upcoming (notice 2 days ago, effective in 12 days): SMS two-step
              verification, new SMS vendor, Privacy Policy v4
"""

COMPANY = {
    "name": "Ferncastle",
    "legal_entity": "Ferncastle Teamworks Sp. z o.o.",
    "address": "ul. Przyokopowa 33, 01-208 Warszawa, Poland",
    "privacy_contact": "privacy@ferncastle.example",
    "website": "https://ferncastle.example",
}

PURPOSES = [
    "Hosting and infrastructure",
    "Email delivery",
    "Payments",
    "Analytics",
    "Customer support",
    "Security and monitoring",
    "Identity and authentication",
    "Sales and CRM",
    "AI features",
]

TRANSFER_MECHANISMS = [
    "Within the EEA",
    "Adequacy decision",
    "EU-US Data Privacy Framework",
    "Standard Contractual Clauses",
    "Binding Corporate Rules",
]

DOCUMENTS = [
    {
        "slug": "privacy-policy",
        "title": "Privacy Policy",
        "description": "How Ferncastle collects, uses, shares and protects personal data as a controller, and the rights you have.",
        "notice": {"length": 3, "unit": "business_days", "calendars": ["PL"], "timezone": "Europe/Warsaw", "objection_days": None},
        "versions": [
            {
                "file": "privacy-policy/v1.md",
                "effective_days_ago": 1060,
                "is_material": True,
                "summary": "First published version of the Privacy Policy, issued at the public launch of Ferncastle.",
            },
            {
                "file": "privacy-policy/v2.md",
                "effective_days_ago": 520,
                "is_material": True,
                "summary": "Adds the optional AI Assistant as a new purpose, with a new category of data (prompts and outputs) and transfers to its provider in the United States. Shortens retention of support communications from three years to two, device and log data from 12 to 6 months and analytics data from 25 to 14 months. Removes the United States as a location for product analytics.",
            },
            {
                "file": "privacy-policy/v3.md",
                "effective_days_ago": 300,
                "is_material": True,
                "summary": "Adds the optional AI Meeting Notes feature, which processes meeting audio recordings and transcripts, including transfers to Canada under an adequacy decision and a 7-day retention period for audio. Mentions the EU-US Data Privacy Framework as a transfer mechanism and the disaster-recovery region in the Netherlands. Clarifies the description of our role as processor.",
            },
        ],
    },
    {
        "slug": "cookie-policy",
        "title": "Cookie Policy",
        "description": "Which cookies and similar technologies Ferncastle uses on its website and web app, why, and how to control them.",
        "notice": {"length": 3, "unit": "business_days", "calendars": ["PL"], "timezone": "Europe/Warsaw", "objection_days": None},
        "versions": [
            {
                "file": "cookie-policy/v1.md",
                "effective_days_ago": 1060,
                "is_material": True,
                "summary": "First published version of the Cookie Policy.",
            },
            {
                "file": "cookie-policy/v2.md",
                "effective_days_ago": 540,
                "is_material": True,
                "summary": "Replaces the analytics cookies of our former US analytics provider with a single first-party analytics cookie from an EU provider, adds a functional cookie for the live support chat, and reduces the lifetime of the consent cookie from 12 to 6 months.",
            },
            {
                "file": "cookie-policy/v3.md",
                "effective_days_ago": 180,
                "is_material": False,
                "summary": "Editorial update only. Moves the section on managing cookie preferences above the cookie table, corrects typographical errors and clarifies the description of local storage. No cookies were added, removed or changed.",
            },
        ],
    },
    {
        "slug": "dpa",
        "title": "Data Processing Agreement",
        "description": "The Article 28 GDPR terms under which Ferncastle processes Customer Content on behalf of its customers.",
        "notice": {"length": 14, "unit": "calendar_days", "calendars": ["PL"], "timezone": "Europe/Warsaw", "objection_days": 14},
        "versions": [
            {
                "file": "dpa/v1.md",
                "effective_days_ago": 1060,
                "is_material": True,
                "summary": "First published version of the Data Processing Agreement.",
            },
            {
                "file": "dpa/v2.md",
                "effective_days_ago": 560,
                "is_material": True,
                "summary": "Extends the advance notice of new sub-processors from 10 to 14 calendar days and sets out the objection procedure in more detail. Introduces feature sub-processors engaged only when a customer enables an optional feature. Shortens the personal data breach notification deadline from 72 to 48 hours and updates the technical and organisational measures in Annex 2.",
            },
        ],
    },
    {
        "slug": "terms",
        "title": "Terms of Service",
        "description": "The contract between Ferncastle and its customers for the use of the Ferncastle service.",
        "notice": {"length": 30, "unit": "calendar_days", "calendars": ["PL"], "timezone": "Europe/Warsaw", "objection_days": None},
        "versions": [
            {
                "file": "terms/v1.md",
                "effective_days_ago": 1060,
                "is_material": True,
                "summary": "First published version of the Terms of Service.",
            },
            {
                "file": "terms/v2.md",
                "effective_days_ago": 520,
                "is_material": True,
                "summary": "Adds terms for optional AI features, including ownership of outputs and the customer's responsibility for reviewing them. Extends the acceptable use rules, and extends the notice period for price increases from 30 to 60 days.",
            },
            {
                "file": "terms/v3.md",
                "effective_days_ago": 35,
                "is_material": False,
                "summary": "Editorial update only. Corrects typographical errors, replaces an outdated cross-reference and rewords two sentences in the sections on fees and termination for clarity. The rights and obligations of the parties are unchanged.",
            },
        ],
    },
]

UPCOMING = {
    "title": "SMS two-step verification: new sub-processor and Privacy Policy update",
    "summary": "We are adding SMS as an optional second step when signing in. To send verification codes we will engage Kestrel Messaging in Portugal as a new sub-processor, and we are updating the Privacy Policy to cover mobile phone numbers as a new category of personal data.",
    "notice_started_days_ago": 3,
    "effective_in_days": 12,
    "document_version": {
        "slug": "privacy-policy",
        "file": "privacy-policy/v4.md",
        "is_material": True,
        "summary": "Adds mobile phone numbers, used for optional SMS two-step verification, as a new category of personal data with its own purpose, legal basis and retention period. Updates the section on international transfers: email delivery now takes place within the EEA, and content delivery edge locations in the United States and Singapore are covered by Standard Contractual Clauses.",
    },
    "subprocessor": {
        "slug": "kestrel-messaging",
        "history": [
            {
                "summary": "New sub-processor for the optional SMS two-step verification, so users can receive sign-in codes by text message.",
                "fields": {
                    "name": "Kestrel Messaging",
                    "legal_entity": "Kestrel Messaging, Unipessoal Lda",
                    "address": "Avenida da Liberdade 190, 4.º andar, 1250-147 Lisboa, Portugal",
                    "contact": "dpo@kestrel-messaging.example",
                    "purpose": "Identity and authentication",
                    "description": "Sends one-time sign-in codes by SMS to users who turn on SMS two-step verification.",
                    "data_categories": ["Phone numbers", "Authentication data"],
                    "countries": ["PT"],
                    "transfer_mechanism": "Within the EEA",
                    "website": "https://kestrel-messaging.example",
                    "feature": "SMS two-step verification",
                },
            },
        ],
    },
}

# An addition announced and then withdrawn before it took effect: customers were told both times.
WITHDRAWN = {
    "title": "Brightline Translate added",
    "summary": "We planned to engage Brightline Translate to offer machine translation of comments and documents inside Ferncastle.",
    "notice_started_days_ago": 40,
    "planned_effective_days_ago": 25,
    "withdrawn_days_ago": 33,
    "reason": "Brightline could not commit to processing customer content only in the EEA, so we will not engage it and machine translation stays switched off.",
    "subprocessor": {
        "slug": "brightline-translate",
        "history": [
            {
                "summary": "New sub-processor for optional machine translation of comments and documents.",
                "fields": {
                    "name": "Brightline Translate",
                    "legal_entity": "Brightline Language Technologies Inc.",
                    "address": "500 Howard Street, San Francisco, CA 94105, United States",
                    "contact": "privacy@brightline-translate.example",
                    "purpose": "Machine translation",
                    "description": "Would have translated comments and documents that users chose to translate.",
                    "data_categories": ["Customer content"],
                    "countries": ["US"],
                    "transfer_mechanism": "Standard Contractual Clauses",
                    "website": "https://brightline-translate.example",
                    "feature": "Machine translation",
                },
            },
        ],
    },
}

SUBPROCESSORS = [
    # ------------------------------------------------------------------ hosting
    {
        "slug": "nordlicht-cloud",
        "history": [
            {"days_ago": 1060, "summary": "Primary cloud provider since launch: all production systems run in its Frankfurt region.", "fields": {
                "name": "Nordlicht Cloud",
                "legal_entity": "Nordlicht Cloud GmbH",
                "address": "Hanauer Landstraße 291, 60314 Frankfurt am Main, Germany",
                "contact": "datenschutz@nordlicht-cloud.example",
                "purpose": "Hosting and infrastructure",
                "description": "Hosts the Ferncastle application servers, databases and file storage in its Frankfurt region.",
                "data_categories": ["Account data", "Customer content", "Usage data", "Device and log data"],
                "countries": ["DE"],
                "transfer_mechanism": "Within the EEA",
                "website": "https://nordlicht-cloud.example",
                "feature": None,
            }},
            {"days_ago": 300, "summary": "Added a warm standby region in Amsterdam for disaster recovery. Data stays within the EEA.", "fields": {
                "countries": ["DE", "NL"],
                "description": "Hosts the Ferncastle application servers, databases and file storage in Frankfurt, with a standby region in Amsterdam for disaster recovery.",
            }},
        ],
    },
    {
        "slug": "bursztyn-data",
        "history": [
            {"days_ago": 1060, "summary": "Independent second provider for off-site backups, so that backups do not depend on our primary cloud provider.", "fields": {
                "name": "Bursztyn Data Centers",
                "legal_entity": "Bursztyn Data Centers S.A.",
                "address": "ul. Grunwaldzka 412, 80-309 Gdańsk, Poland",
                "contact": "iod@bursztyn-dc.example",
                "purpose": "Hosting and infrastructure",
                "description": "Stores our encrypted nightly database and file backups in its Gdańsk data centre.",
                "data_categories": ["Account data", "Customer content", "Billing data"],
                "countries": ["PL"],
                "transfer_mechanism": "Within the EEA",
                "website": "https://bursztyn-dc.example",
                "feature": None,
            }},
            {"days_ago": 150, "summary": "Bursztyn moved its registered office to its new Gdańsk campus. No change to where our backups are stored.", "fields": {
                "address": "ul. Lęborska 7, 80-386 Gdańsk, Poland",
            }},
        ],
    },
    # ------------------------------------------------------------ email delivery
    {
        "slug": "lettermint",
        "history": [
            {"days_ago": 1060, "summary": "Transactional email provider since launch.", "fields": {
                "name": "Lettermint",
                "legal_entity": "Lettermint, Inc.",
                "address": "1201 Pearl Street, Suite 300, Boulder, CO 80302, United States",
                "contact": "privacy@lettermint.example",
                "purpose": "Email delivery",
                "description": "Sends transactional emails such as workspace invitations, password resets and notification digests.",
                "data_categories": ["Account data", "Contact data", "Device and log data"],
                "countries": ["US"],
                "transfer_mechanism": "Standard Contractual Clauses",
                "website": "https://lettermint.example",
                "feature": None,
            }},
            {"days_ago": 410, "summary": "Lettermint self-certified under the EU-US Data Privacy Framework; we now rely on the Framework instead of the Standard Contractual Clauses.", "fields": {
                "transfer_mechanism": "EU-US Data Privacy Framework",
            }},
            {"days_ago": 45, "summary": "Removed after all email traffic was migrated to Postbrücke Mail, so email no longer leaves the EEA.", "removed": True},
        ],
    },
    {
        "slug": "postbruecke-mail",
        "history": [
            {"days_ago": 130, "summary": "New email provider in the EEA, replacing Lettermint. Both providers ran in parallel during the migration.", "fields": {
                "name": "Postbrücke Mail",
                "legal_entity": "Postbrücke Mail GmbH",
                "address": "Praterstraße 38, 1020 Wien, Austria",
                "contact": "datenschutz@postbruecke.example",
                "purpose": "Email delivery",
                "description": "Sends transactional emails such as workspace invitations, password resets and notification digests.",
                "data_categories": ["Account data", "Contact data", "Device and log data"],
                "countries": ["AT"],
                "transfer_mechanism": "Within the EEA",
                "website": "https://postbruecke.example",
                "feature": None,
            }},
        ],
    },
    # ------------------------------------------------------------------ payments
    {
        "slug": "quayside-payments",
        "history": [
            {"days_ago": 1060, "summary": "Payment provider for paid subscriptions since launch.", "fields": {
                "name": "Quayside Payments",
                "legal_entity": "Quayside Payments Europe Limited",
                "address": "14 Sir John Rogerson's Quay, Dublin 2, D02 KX62, Ireland",
                "contact": "dataprotection@quaysidepay.example",
                "purpose": "Payments",
                "description": "Processes card and SEPA Direct Debit payments for paid subscriptions.",
                "data_categories": ["Billing data", "Payment card data", "Contact data"],
                "countries": ["IE"],
                "transfer_mechanism": "Within the EEA",
                "website": "https://quaysidepay.example",
                "feature": None,
            }},
            {"days_ago": 640, "summary": "Quayside moved fraud screening to its operations centre in London. The UK is covered by an adequacy decision.", "fields": {
                "countries": ["IE", "GB"],
                "transfer_mechanism": "Adequacy decision",
                "description": "Processes card and SEPA Direct Debit payments for paid subscriptions and screens them for fraud.",
            }},
        ],
    },
    {
        "slug": "ledgerfield",
        "history": [
            {"days_ago": 1060, "summary": "Invoicing and VAT provider since launch.", "fields": {
                "name": "Ledgerfield",
                "legal_entity": "Ledgerfield B.V.",
                "address": "Keizersgracht 512, 1017 EK Amsterdam, Netherlands",
                "contact": "privacy@ledgerfield.example",
                "purpose": "Payments",
                "description": "Issues invoices and calculates VAT for paid subscriptions.",
                "data_categories": ["Billing data", "Contact data"],
                "countries": ["NL"],
                "transfer_mechanism": "Within the EEA",
                "website": "https://ledgerfield.example",
                "feature": None,
            }},
        ],
    },
    # ----------------------------------------------------------------- analytics
    {
        "slug": "funnelbird",
        "history": [
            {"days_ago": 1060, "summary": "Product analytics provider at launch.", "fields": {
                "name": "Funnelbird",
                "legal_entity": "Funnelbird, Inc.",
                "address": "80 Broad Street, 12th Floor, New York, NY 10004, United States",
                "contact": "privacy@funnelbird.example",
                "purpose": "Analytics",
                "description": "Measured how visitors and users navigate our website and web app, for users who consented to analytics cookies.",
                "data_categories": ["Usage data", "Device and log data"],
                "countries": ["US"],
                "transfer_mechanism": "Standard Contractual Clauses",
                "website": "https://funnelbird.example",
                "feature": None,
            }},
            {"days_ago": 500, "summary": "Removed after product analytics moved to Metricula in the EU. Historical data held by Funnelbird was deleted.", "removed": True},
        ],
    },
    {
        "slug": "metricula",
        "history": [
            {"days_ago": 540, "summary": "New EU-based product analytics provider replacing Funnelbird, so analytics data no longer leaves the EEA.", "fields": {
                "name": "Metricula",
                "legal_entity": "Metricula SAS",
                "address": "27 rue du Faubourg Poissonnière, 75009 Paris, France",
                "contact": "dpo@metricula.example",
                "purpose": "Analytics",
                "description": "Measures which features of the web app are used, with IP addresses truncated on collection, for users who consented to analytics cookies.",
                "data_categories": ["Usage data", "Device and log data"],
                "countries": ["FR"],
                "transfer_mechanism": "Within the EEA",
                "website": "https://metricula.example",
                "feature": None,
            }},
            {"days_ago": 70, "summary": "Metricula was acquired by Clearsight Analytics and renamed. Same team, same service and same processing location.", "fields": {
                "name": "Clearsight Analytics",
                "legal_entity": "Clearsight Analytics France SAS",
                "contact": "dpo@clearsight-analytics.example",
                "website": "https://clearsight-analytics.example",
            }},
        ],
    },
    # ---------------------------------------------------------- customer support
    {
        "slug": "tiketo",
        "history": [
            {"days_ago": 1060, "summary": "Help desk for email support since launch.", "fields": {
                "name": "Tiketo",
                "legal_entity": "Tiketo Oy",
                "address": "Mannerheimintie 12 B, 00100 Helsinki, Finland",
                "contact": "privacy@tiketo.example",
                "purpose": "Customer support",
                "description": "Provides our help desk, where support requests sent by email are answered and tracked.",
                "data_categories": ["Account data", "Contact data", "Support communications"],
                "countries": ["FI"],
                "transfer_mechanism": "Within the EEA",
                "website": "https://tiketo.example",
                "feature": None,
            }},
            {"days_ago": 320, "summary": "We started offering phone support to Business and Enterprise customers through Tiketo's telephony module; calls are recorded for quality and training.", "fields": {
                "description": "Provides our help desk for email and phone support, including the recording of support calls.",
                "data_categories": ["Account data", "Contact data", "Support communications", "Call recordings"],
            }},
        ],
    },
    {
        "slug": "chatterbay",
        "history": [
            {"days_ago": 560, "summary": "Live chat added so users can reach support from inside the web app.", "fields": {
                "name": "Chatterbay",
                "legal_entity": "Chatterbay Ltd",
                "address": "35 Great Sutton Street, London EC1V 0DX, United Kingdom",
                "contact": "privacy@chatterbay.example",
                "purpose": "Customer support",
                "description": "Provides the live chat widget that our support team uses to answer questions inside the web app.",
                "data_categories": ["Account data", "Support communications", "Device and log data"],
                "countries": ["GB"],
                "transfer_mechanism": "Adequacy decision",
                "website": "https://chatterbay.example",
                "feature": None,
            }},
            {"days_ago": 250, "summary": "Chatterbay moved its registered office. No change to the service or processing locations.", "fields": {
                "address": "4th Floor, 88 Wood Street, London EC2V 7QF, United Kingdom",
            }},
        ],
    },
    # ---------------------------------------------------- security and monitoring
    {
        "slug": "faultline",
        "history": [
            {"days_ago": 1060, "summary": "Error monitoring since launch.", "fields": {
                "name": "Faultline",
                "legal_entity": "Faultline Observability ApS",
                "address": "Store Kongensgade 68, 1264 København K, Denmark",
                "contact": "privacy@faultline.example",
                "purpose": "Security and monitoring",
                "description": "Collects error reports and performance traces from the web and mobile apps so we can find and fix faults.",
                "data_categories": ["Device and log data", "Account data"],
                "countries": ["DK"],
                "transfer_mechanism": "Within the EEA",
                "website": "https://faultline.example",
                "feature": None,
            }},
        ],
    },
    {
        "slug": "bastionet",
        "history": [
            {"days_ago": 1060, "summary": "Content delivery network and DDoS protection since launch.", "fields": {
                "name": "Bastionet",
                "legal_entity": "Bastionet AB",
                "address": "Sveavägen 44, 111 34 Stockholm, Sweden",
                "contact": "dataskydd@bastionet.example",
                "purpose": "Security and monitoring",
                "description": "Provides content delivery, a web application firewall and DDoS protection in front of the Ferncastle service.",
                "data_categories": ["Device and log data", "Usage data"],
                "countries": ["SE"],
                "transfer_mechanism": "Within the EEA",
                "website": "https://bastionet.example",
                "feature": None,
            }},
            {"days_ago": 30, "summary": "Enabled Bastionet edge locations in the United States and Singapore to speed up the service for users in those regions. Transfers to these locations are covered by Standard Contractual Clauses.", "fields": {
                "countries": ["SE", "US", "SG"],
                "transfer_mechanism": "Standard Contractual Clauses",
            }},
        ],
    },
    {
        "slug": "logwarden",
        "history": [
            {"days_ago": 1060, "summary": "Security log management since launch.", "fields": {
                "name": "Logwarden",
                "legal_entity": "Logwarden GmbH",
                "address": "Leopoldstraße 118, 80802 München, Germany",
                "contact": "privacy@logwarden.example",
                "purpose": "Security and monitoring",
                "description": "Stores and analyses security and audit logs to detect suspicious sign-ins and other threats.",
                "data_categories": ["Device and log data", "Account data"],
                "countries": ["DE"],
                "transfer_mechanism": "Within the EEA",
                "website": "https://logwarden.example",
                "feature": None,
            }},
            {"days_ago": 14, "summary": "Logwarden added a second EU region in Helsinki that keeps a replica of our security logs. Data stays within the EEA.", "fields": {
                "countries": ["DE", "FI"],
            }},
        ],
    },
    # -------------------------------------------------- identity and authentication
    {
        "slug": "keystile",
        "history": [
            {"days_ago": 700, "summary": "Added to offer SAML/OIDC single sign-on and SCIM provisioning on the Enterprise plan.", "fields": {
                "name": "Keystile",
                "legal_entity": "Keystile Identity s.r.o.",
                "address": "Pernerova 35a, 186 00 Praha 8, Czech Republic",
                "contact": "privacy@keystile.example",
                "purpose": "Identity and authentication",
                "description": "Connects Ferncastle to the customer's identity provider for single sign-on and SCIM user provisioning.",
                "data_categories": ["Account data", "Authentication data"],
                "countries": ["CZ"],
                "transfer_mechanism": "Within the EEA",
                "website": "https://keystile.example",
                "feature": "Enterprise single sign-on",
            }},
        ],
    },
    # ------------------------------------------------------------- sales and CRM
    {
        "slug": "velamar-crm",
        "history": [
            {"days_ago": 820, "summary": "CRM for managing contracts and renewals of business customers.", "fields": {
                "name": "Velamar CRM",
                "legal_entity": "Velamar CRM S.L.",
                "address": "Carrer de Pujades 77, 08005 Barcelona, Spain",
                "contact": "privacidad@velamar.example",
                "purpose": "Sales and CRM",
                "description": "Hosts our customer relationship management system for contracts, renewals and account management of business customers.",
                "data_categories": ["Contact data", "Billing data"],
                "countries": ["ES"],
                "transfer_mechanism": "Within the EEA",
                "website": "https://velamar.example",
                "feature": None,
            }},
        ],
    },
    # --------------------------------------------------------------- AI features
    {
        "slug": "cortexa-ai",
        "history": [
            {"days_ago": 520, "summary": "Large language model provider for the new AI Assistant. Used only for workspaces that turn the AI Assistant on; prompts and outputs are not used to train models.", "fields": {
                "name": "Cortexa AI",
                "legal_entity": "Cortexa AI, Inc.",
                "address": "450 Townsend Street, San Francisco, CA 94107, United States",
                "contact": "privacy@cortexa-ai.example",
                "purpose": "AI features",
                "description": "Runs the large language model that generates answers, summaries and drafts in the AI Assistant.",
                "data_categories": ["AI prompts and outputs", "Customer content"],
                "countries": ["US"],
                "transfer_mechanism": "Standard Contractual Clauses",
                "website": "https://cortexa-ai.example",
                "feature": "AI Assistant",
            }},
            {"days_ago": 400, "summary": "Cortexa AI self-certified under the EU-US Data Privacy Framework; we now rely on the Framework instead of the Standard Contractual Clauses.", "fields": {
                "transfer_mechanism": "EU-US Data Privacy Framework",
            }},
        ],
    },
    {
        "slug": "vektorhaus",
        "history": [
            {"days_ago": 519, "summary": "Vector search provider for the new AI Assistant, used only for workspaces that turn the AI Assistant on.", "fields": {
                "name": "Vektorhaus",
                "legal_entity": "Vektorhaus GmbH",
                "address": "Köpenicker Straße 126, 10179 Berlin, Germany",
                "contact": "datenschutz@vektorhaus.example",
                "purpose": "AI features",
                "description": "Creates and stores vector embeddings of workspace content so the AI Assistant can find relevant tasks and documents.",
                "data_categories": ["Customer content"],
                "countries": ["DE"],
                "transfer_mechanism": "Within the EEA",
                "website": "https://vektorhaus.example",
                "feature": "AI Assistant",
            }},
        ],
    },
    {
        "slug": "murmurate",
        "history": [
            {"days_ago": 300, "summary": "Speech-to-text provider for the new AI Meeting Notes feature, used only for workspaces that turn it on. Canada is covered by an adequacy decision.", "fields": {
                "name": "Murmurate",
                "legal_entity": "Murmurate Speech Technologies Inc.",
                "address": "220 King Street West, Suite 1500, Toronto, ON M5H 1K4, Canada",
                "contact": "privacy@murmurate.example",
                "purpose": "AI features",
                "description": "Transcribes recorded meeting audio into text for AI Meeting Notes.",
                "data_categories": ["Audio recordings", "Customer content", "Account data"],
                "countries": ["CA"],
                "transfer_mechanism": "Adequacy decision",
                "website": "https://murmurate.example",
                "feature": "AI Meeting Notes",
            }},
        ],
    },
]

# Northwind's objection to the upcoming change's new sub-processor, in discussion (hours after the notice).
OBJECTION = {
    "received_hours_after_notice": 20,
    "email": "dpo@northwind-logistics.example",
    "organisation": "Northwind Logistics",
    "contact_name": "Ada Kowalska",
    "grounds": "Our customers' phone numbers may only be processed by vendors on our approved list, and the "
               "new SMS provider is not on it yet. We object until our vendor review is complete, and ask "
               "whether SMS codes for our workspaces can stay with the current provider.",
    "steps": [
        (6, "moved", "received", "acknowledged",
         "Thank you. We have recorded your objection and our privacy team is reviewing it.", True),
        (9, "note", None, None, "Sales confirms Northwind's contract allows an opt-out of SMS two-step.", False),
        (26, "moved", "acknowledged", "in_discussion",
         "We can keep SMS two-step for your workspaces on an authenticator app only, so that your "
         "users' phone numbers never reach the new provider. Could we discuss this on a call this week?",
         True),
    ],
}


# What the DORA register of information asks of each provider, given when it was added. The LEIs are
# made up but pass the ISO 17442 check digits (domain/identifiers.lei_check_digits).
DORA = {
    "nordlicht-cloud": {"lei": "529900A9C261491F9024", "hq_country": "DE", "ict_service_type": "S17",
                        "parent_name": "Nordlicht Holding SE", "parent_lei": "529900AB8CAD7DFA7A09"},
    "bursztyn-data": {"lei": "52990018C265CE5ECD98", "hq_country": "PL", "ict_service_type": "S09",
                      "latin_name": "Bursztyn Data Centers S.A."},
    "lettermint": {"lei": "529900DECD128608F987", "hq_country": "US", "ict_service_type": "S19"},
    "postbruecke-mail": {"euid": "DEK1101R.HRB116737", "hq_country": "DE", "ict_service_type": "S19"},
    "quayside-payments": {"lei": "5299000506A2F19E3E51", "hq_country": "IE", "ict_service_type": "S19"},
    "ledgerfield": {"lei": "52990016A67567DCF696", "hq_country": "NL", "ict_service_type": "S19"},
    "metricula": {"lei": "52990081A506D12F3B28", "hq_country": "FR", "ict_service_type": "S06"},
    "tiketo": {"lei": "529900EB07D3FE19C307", "hq_country": "EE", "ict_service_type": "S03"},
    "chatterbay": {"lei": "5299008B5FA94477C637", "ict_service_type": "S19"},
    "faultline": {"lei": "529900565626D49D5213", "ict_service_type": "S19"},
    "bastionet": {"lei": "529900C1D67C3C55E784", "ict_service_type": "S04"},
    "logwarden": {"lei": "5299004CB879ADF17E58", "ict_service_type": "S19"},
    "keystile": {"lei": "5299001F2583EA115061", "ict_service_type": "S04"},
    "velamar-crm": {"lei": "5299009F31FF32ABDC35", "ict_service_type": "S19"},
    "cortexa-ai": {"lei": "529900AD7C45032FF642", "ict_service_type": "S18"},
}

# The chain below three entries, as the change that added it: (slug, days ago, summary, chain).
# Nordlicht Cloud's reaches rank 3.
CHAINS = [
    ("nordlicht-cloud", 200, "Nordlicht Cloud now lists the companies it relies on for our hosting.", [
        {"name": "Rheinstrom Colocation", "legal_entity": "Rheinstrom Colocation GmbH", "country": "DE",
         "service": "data centre space and power", "service_type": "S07", "lei": "529900488E3B4667AA14"},
        {"name": "Brise Power", "legal_entity": "Brise Power GmbH", "country": "DE",
         "service": "backup power for the data centre", "service_type": "S12", "lei": "529900BB2ABD2B9AA976",
         "parent": "Rheinstrom Colocation"},
        {"name": "Kabelwerk Netz", "legal_entity": "Kabelwerk Netz AG", "country": "DE",
         "service": "network transit", "service_type": "S11", "lei": "529900EB6C5000EA6189"},
    ]),
    ("tiketo", 280, "Tiketo lists the providers that host its help desk and carry its calls.", [
        {"name": "Cascade Compute", "legal_entity": "Cascade Compute Inc.", "country": "US",
         "service": "hosting", "service_type": "S17", "lei": "529900A9C3CF6615C197"},
    ]),
    ("quayside-payments", 600, "Quayside lists its card processing and fraud screening providers.", [
        {"name": "Harbourline Processing", "legal_entity": "Harbourline Processing Ltd", "country": "IE",
         "service": "card processing", "service_type": "S19", "lei": "52990094B30B8E0CE253"},
        {"name": "Sentinel Fraud Labs", "legal_entity": "Sentinel Fraud Labs Ltd", "country": "GB",
         "service": "fraud screening", "service_type": "S06", "euid": "DEK1101R.HRB99001"},
    ]),
]
