// Parapet playground: GraphiQL pointed at /graphql (queries and mutations) and /graphql/ws (subscriptions,
// graphql-transport-ws), with example operations in tabs. Loaded by index.html after the vendored React,
// ReactDOM, graphql-ws and GraphiQL builds; no inline script, so the page's CSP can say `script-src 'self'`.
"use strict";

// GraphiQL's dialogs add a <style> element (react-remove-scroll-bar's scroll lock) and stamp it with the
// nonce in this global; the page's CSP allows styles with this response's nonce, which the server put
// on our own <script> tag.
window.__webpack_nonce__ = document.currentScript ? document.currentScript.nonce : undefined;

const QUEUE = `# The incidents queue: newest activity first.
query Queue {
  incidents(first: 20) {
    totalCount
    nodes { id displayName severity status priorityScore alertCount }
    pageInfo { hasNextPage endCursor }
  }
}
`;

const NESTED = `# One incident with its alerts, why each joined, and the evidence.
# Put an id from the queue in the Variables tab.
query IncidentDetail($id: ID!) {
  incident(id: $id) {
    id
    displayName
    severity
    status
    assignedTo
    classification
    determination
    priorityScore
    version
    alertCount
    alerts(first: 50) {
      totalCount
      nodes {
        id
        title
        severity
        status
        serviceSource
        correlation { kind matchedKeys { kind value } skippedKeys { kind value reason } at }
        evidence(first: 20) { __typename entityKey verdict }
      }
    }
    evidence(first: 50) {
      totalCount
      nodes { __typename entityKey verdict alertCount }
      pageInfo { hasNextPage endCursor }
    }
  }
}
`;

const TRIAGE = `# Take an incident: assign it, start work, classify it (needs the analyst role).
# expectedVersion guards against overwriting someone else's change (CONFLICT when stale).
mutation Triage($id: ID!, $version: Int) {
  updateIncident(
    id: $id
    expectedVersion: $version
    input: {
      status: IN_PROGRESS
      assignedTo: "alice@contoso.com"
      classification: TRUE_POSITIVE
      determination: PHISHING
    }
  ) {
    id status assignedTo classification determination version
  }
}
`;

const INGEST = `# Push alerts as a detection source would (roles ingestor or admin).
# Items with bad content are rejected one by one; the good ones are kept.
mutation Ingest($alerts: [AlertInput!]!) {
  ingestAlerts(alerts: $alerts) {
    accepted
    rejected
    items { index status alert { id incident { id } } error }
  }
}
`;

const HUNT = `# Threat Explorer: the last 30 days of mail (readers and above).
# sender: an address, a domain, or *.domain; url: a full URL (prefix) or a host.
query Hunt {
  emails(filter: { sender: "*.evil.example", url: "evil.example" }, first: 50) {
    totalCount
    totalCountIsEstimate
    pageInfo { hasNextPage endCursor }
    nodes {
      id receivedAt recipient subject deliveryAction latestDeliveryLocation threatTypes
      timeline { kind at fromLocation toLocation actor reason }
      alerts { id title }
    }
  }
  byDeliveryAction: emailAggregate(filter: { sender: "*.evil.example" }, groupBy: DELIVERY_ACTION) { key count }
  byDay: emailAggregate(filter: {}, groupBy: DAY, first: 30) { key count }
}
`;

const ACTIONS = `# The action center: remediation actions waiting for a decision, and the history.
# Analysts propose with remediateEmails; another responder decides with approveAction / rejectAction.
query ActionCenter {
  pending: actions(filter: { status: [PENDING] }) {
    totalCount
    nodes {
      id type source status proposedBy comment targetCount createdAt expiresAt
      preview { mailboxCount byLocation { location count } alreadyInDestination notRemediable { location count } }
      incident { id displayName }
    }
  }
  history: actions(filter: { status: [COMPLETED, FAILED, REJECTED, CANCELLED, EXPIRED, ALREADY_REMEDIATED] }, first: 20) {
    nodes {
      id type status decidedBy decidedAt completedAt
      successCount failedCount alreadyInDestinationCount notFoundCount
    }
  }
}
`;

const INGEST_VARIABLES = JSON.stringify({
  alerts: [1, 2].map((n) => ({
    providerAlertId: `demo-${n}`,
    serviceSource: "microsoftDefenderForOffice365",
    detectionSource: "microsoftDefenderForOffice365",
    alertPolicy: "Email messages containing malicious URL removed after delivery",
    title: "Email messages containing malicious URL removed after delivery",
    severity: "HIGH",
    category: "InitialAccess",
    mitreTechniques: ["T1566.002"],
    firstActivityAt: new Date().toISOString(),
    evidence: [
      {
        verdict: "MALICIOUS",
        email: {
          networkMessageId: `00000000-0000-0000-0000-00000000000${n}`,
          recipient: n === 1 ? "bob@contoso.com" : "carol@contoso.com",
          envelopeSender: "billing@evil.example",
          headerFrom: "billing@evil.example",
          subject: "Your invoice is overdue",
          receivedAt: new Date().toISOString(),
          senderIp: "203.0.113.7",
          urls: ["https://evil.example/pay"],
          deliveryAction: "DELIVERED",
          latestDeliveryLocation: "INBOX",
          threatTypes: ["PHISH"],
        },
      },
    ],
  })),
}, null, 2);

// Send the Authorization header from the Headers tab as the WebSocket connection_init payload.
function wsConnectionParams() {
  try {
    const headers = JSON.parse(localStorage.getItem("graphiql:headers") || "{}");
    const auth = headers.Authorization || headers.authorization;
    return auth ? { Authorization: auth } : {};
  } catch (e) {
    return {};
  }
}

const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql/ws`;
const fetcher = GraphiQL.createFetcher({
  url: `${location.origin}/graphql`,
  wsClient: graphqlWs.createClient({ url: wsUrl, lazy: true, connectionParams: wsConnectionParams }),
});

const HEADERS = JSON.stringify({ Authorization: "Bearer PASTE-A-TOKEN-FROM-parapet-token" }, null, 2);

ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher,
    shouldPersistHeaders: true,
    isHeadersEditorEnabled: true,
    defaultHeaders: HEADERS,
    defaultEditorToolsVisibility: true,
    defaultTabs: [
      { query: QUEUE, headers: HEADERS },
      { query: NESTED, variables: JSON.stringify({ id: "<incident id>" }, null, 2), headers: HEADERS },
      { query: TRIAGE, variables: JSON.stringify({ id: "<incident id>", version: null }, null, 2), headers: HEADERS },
      { query: INGEST, variables: INGEST_VARIABLES, headers: HEADERS },
      { query: HUNT, headers: HEADERS },
      { query: ACTIONS, headers: HEADERS },
    ],
  }),
);
