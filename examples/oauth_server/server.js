// OAuth 2.0 authorization server for the gateway demo and end-to-end tests.
//
// It is the certified `oidc-provider` (panva) configured as a machine-to-machine
// authorization server:
//   * client credentials grant (RFC 6749 §4.4) at POST /oauth/token;
//   * opaque access tokens bound to one resource server (RFC 8707 resource
//     indicators): the token's `aud` is the gateway's resource identifier;
//   * token introspection (RFC 7662) at POST /oauth/introspect, client
//     authentication required (the gateway is the client `gateway`);
//   * token revocation (RFC 7009) at POST /oauth/revoke;
//   * the agent identity (agent_id, agent_name, owner) carried as extra token
//     claims, copied from the client's registration, so introspection returns
//     what the gateway's `identityExtraction` templates read.
//
// Clients (secrets are demo values; the gateway's `identityExtraction` maps
// their claims to X-Verified-Agent-*):
//
//   client_id        secret               scopes                              agent_id
//   sentinel-oauth   sentinel-secret      mcp:tools:invoke mcp:tools:read     sentinel-2
//   alchemy-oauth    alchemy-secret       a2a:tasks:send                      alchemy-2
//   admin-oauth      admin-secret         mcp:tools:invoke mcp:tools:read
//                                         a2a:tasks:send                      admin-2
//   expiring-oauth   expiring-secret      mcp:tools:invoke a2a:tasks:send     sentinel-3  (tokens live --short-ttl s)
//   anonymous-oauth  anonymous-secret     mcp:tools:invoke a2a:tasks:send     (no agent claims)
//   gateway          gateway-secret       (none: it only introspects)
//
// GET /stats returns {"introspection": n, "token": n} (requests served), so
// tests can prove the gateway caches introspection results.
//
// Resource indicators (RFC 8707): tokens are minted for https://gateway.test
// (the default, the shipped gateway's `resource` and required audience) or,
// when a client asks for it with `resource=`, https://other-service.test (a
// stand-in for another service of the same authorization server: the gateway
// must refuse those tokens). --resource replaces the list.
//
// Run: node server.js --port 9000 [--resource https://gateway.test ...] [--short-ttl 2]

import { parseArgs } from 'node:util';
import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '9000' },
    // Resource indicators this server issues tokens for. The first is the
    // default when a client asks for none.
    resource: { type: 'string', multiple: true, default: ['https://gateway.test', 'https://other-service.test'] },
    'token-ttl': { type: 'string', default: '600' },
    'short-ttl': { type: 'string', default: '2' },
  },
});

const port = Number(args.port);
const issuer = `http://${args.host}:${port}`;
const resources = args.resource;
const SCOPES = ['mcp:tools:invoke', 'mcp:tools:read', 'a2a:tasks:send'];

function agentClient(clientId, secret, scope, agent) {
  return {
    client_id: clientId,
    client_secret: secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope,
    ...agent,
  };
}

const clients = [
  agentClient('sentinel-oauth', 'sentinel-secret', 'mcp:tools:invoke mcp:tools:read', {
    agent_id: 'sentinel-2', agent_name: 'Sentinel Two (OAuth)', owner: 'security-team',
  }),
  agentClient('alchemy-oauth', 'alchemy-secret', 'a2a:tasks:send', {
    agent_id: 'alchemy-2', agent_name: 'Alchemy Two (OAuth)', owner: 'media-team',
  }),
  agentClient('admin-oauth', 'admin-secret', SCOPES.join(' '), {
    agent_id: 'admin-2', agent_name: 'Admin Two (OAuth)', owner: 'platform-team',
  }),
  agentClient('expiring-oauth', 'expiring-secret', 'mcp:tools:invoke a2a:tasks:send', {
    agent_id: 'sentinel-3', agent_name: 'Sentinel Three (short-lived)', owner: 'security-team',
  }),
  agentClient('anonymous-oauth', 'anonymous-secret', 'mcp:tools:invoke a2a:tasks:send', {}),
  {
    client_id: 'gateway',
    client_secret: 'gateway-secret',
    grant_types: [],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  },
];

const AGENT_CLAIMS = ['agent_id', 'agent_name', 'owner'];

const provider = new Provider(issuer, {
  clients,
  scopes: SCOPES,
  extraClientMetadata: { properties: AGENT_CLAIMS },
  routes: {
    token: '/oauth/token',
    introspection: '/oauth/introspect',
    revocation: '/oauth/revoke',
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? resources[0],
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (!resources.includes(resourceIndicator)) {
          throw new Provider.errors.InvalidTarget();
        }
        return {
          scope: SCOPES.join(' '),
          audience: resourceIndicator,
          accessTokenFormat: 'opaque',
        };
      },
    },
  },
  // The agent identity travels with the token and comes back on introspection.
  extraTokenClaims: async (_ctx, token) => {
    if (token.kind !== 'ClientCredentials') return undefined;
    const client = await provider.Client.find(token.clientId);
    if (!client) return undefined;
    const claims = {};
    for (const name of AGENT_CLAIMS) {
      if (client[name] !== undefined) claims[name] = client[name];
    }
    return claims;
  },
  ttl: {
    ClientCredentials: (_ctx, _token, client) => (
      client.clientId === 'expiring-oauth' ? Number(args['short-ttl']) : Number(args['token-ttl'])
    ),
  },
});

const stats = { introspection: 0, token: 0, revocation: 0 };
provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path === '/stats') {
    ctx.body = stats;
    return;
  }
  if (ctx.method === 'GET' && ctx.path === '/healthz') {
    ctx.body = { ok: true };
    return;
  }
  if (ctx.method === 'POST' && ctx.path === '/oauth/introspect') stats.introspection += 1;
  if (ctx.method === 'POST' && ctx.path === '/oauth/token') stats.token += 1;
  if (ctx.method === 'POST' && ctx.path === '/oauth/revoke') stats.revocation += 1;
  await next();
});

provider.on('server_error', (_ctx, err) => console.error('server_error', err));

const server = provider.listen(port, args.host, () => {
  console.log(`oauth server: issuer ${issuer}, resources ${resources.join(', ')}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
