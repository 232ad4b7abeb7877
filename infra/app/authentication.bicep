// App Service Authentication in front of the HTTP API (BCSYNC_HTTP_AUTH=entra): only callers with
// an Entra ID token for the API's app registration get through; bcsync then checks their app roles
// (BCSYNC_READER_ROLE, BCSYNC_ADMIN_ROLE). Deployed only in that mode.

param functionAppName string

@description('Tenant of the API\'s app registration.')
param tenantId string

@description('Application (client) id of the app registration that callers request tokens for.')
param apiClientId string

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: checkov looks for the v1 "enabled" flag; authsettingsV2 turns authentication on with platform.enabled below
  // checkov:skip=CKV_AZURE_63: HTTP logging belongs to the web config (sites/config "web"), not to the authentication settings
  // checkov:skip=CKV_AZURE_65: detailed error messages belong to the web config, not to the authentication settings
  // checkov:skip=CKV_AZURE_66: failed request tracing belongs to the web config, not to the authentication settings
  // checkov:skip=CKV_AZURE_80: no .NET Framework here: a Python app, and this is the authentication settings
  // checkov:skip=CKV_AZURE_88: Azure Files mounts belong to the site, and bcsync needs none
  // checkov:skip=CKV_AZURE_222: public access is the site's property; the API must be reachable and this resource is what guards it
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      // the services' notifications (webhooks) carry no Entra token: bcsync checks their key instead
      excludedPaths: [
        '/api/webhooks/businesscentral'
        '/api/webhooks/dataverse'
      ]
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: apiClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${apiClientId}'
            apiClientId
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}
