// The Flex Consumption plan and the function app (Linux, Python 3.11) with every app setting
// bcsync and the Functions host read. App settings hold no secret and no key: storage, telemetry
// and the sign-in to the integration app registration all go through the user-assigned identity.

param name string
param planName string
param location string
param tags object = {}

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity.')
param identityClientId string

param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string

@allowed([ 512, 2048, 4096 ])
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

// bcsync settings (see the README's configuration table)
param tenantId string
param clientId string
param federatedTokenAudience string = 'api://AzureADTokenExchange'
param useKeyVaultCertificate bool = false

@description('Key Vault secret URI of the client certificate (used with useKeyVaultCertificate).')
param certificateSecretUri string = ''

param dataverseUrl string
param businessCentralUrl string
param businessCentralCompanyId string
param businessCentralScope string = 'https://api.businesscentral.dynamics.com/.default'
param schedule string = '0 */5 * * * *'
param queueName string = 'bcsync-jobs'
param tablePrefix string = 'bcsync'
param pageSize int = 20000
param writeConcurrency int = 4
param httpTimeoutSeconds int = 60
param httpMaxRetries int = 5
param maxRetryWaitSeconds int = 60
param watermarkMarginSeconds int = 60
param jobLeaseSeconds int = 600
param jobTimeBudgetSeconds int = 480
param logRetentionDays int = 30
param reconcileMinutes int = 360
param factsTtlSeconds int = 3600
param autoCreateSalesOrders bool = false

@allowed([ 'keys', 'entra' ])
param httpAuth string = 'keys'
param readerRole string = 'bcsync.Reader'
param adminRole string = 'bcsync.Admin'

@description('With entra: client id of the app registration callers request tokens for.')
param httpApiClientId string = ''

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Identity-based connection of the Functions host (triggers, timer state) and of bcsync's own
// tables and queue: endpoints plus the identity, never a connection string.
var storageSettings = [
  { name: 'AzureWebJobsStorage__blobServiceUri', value: storageAccount.properties.primaryEndpoints.blob }
  { name: 'AzureWebJobsStorage__queueServiceUri', value: storageAccount.properties.primaryEndpoints.queue }
  { name: 'AzureWebJobsStorage__tableServiceUri', value: storageAccount.properties.primaryEndpoints.table }
  { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
  { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
]

// Telemetry with Entra ID: the resource accepts no instrumentation-key-only ingestion. The Python
// worker hands each invocation's trace context to bcsync, which exports with the identity; the
// worker's own exporter (PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY) stays off, it has no credential.
var monitoringSettings = [
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: applicationInsights.properties.ConnectionString }
  { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
  { name: 'PYTHON_ENABLE_OPENTELEMETRY', value: 'true' }
]

var bcsyncSettings = [
  { name: 'BCSYNC_TENANT_ID', value: tenantId }
  { name: 'BCSYNC_CLIENT_ID', value: clientId }
  { name: 'BCSYNC_FEDERATED_TOKEN_AUDIENCE', value: federatedTokenAudience }
  { name: 'BCSYNC_DATAVERSE_URL', value: dataverseUrl }
  { name: 'BCSYNC_BC_URL', value: businessCentralUrl }
  { name: 'BCSYNC_BC_COMPANY_ID', value: businessCentralCompanyId }
  { name: 'BCSYNC_BC_SCOPE', value: businessCentralScope }
  { name: 'BCSYNC_SCHEDULE', value: schedule }
  { name: 'BCSYNC_QUEUE_NAME', value: queueName }
  { name: 'BCSYNC_TABLE_PREFIX', value: tablePrefix }
  { name: 'BCSYNC_PAGE_SIZE', value: string(pageSize) }
  { name: 'BCSYNC_WRITE_CONCURRENCY', value: string(writeConcurrency) }
  { name: 'BCSYNC_HTTP_TIMEOUT', value: string(httpTimeoutSeconds) }
  { name: 'BCSYNC_HTTP_MAX_RETRIES', value: string(httpMaxRetries) }
  { name: 'BCSYNC_MAX_RETRY_WAIT', value: string(maxRetryWaitSeconds) }
  { name: 'BCSYNC_WATERMARK_MARGIN_SECONDS', value: string(watermarkMarginSeconds) }
  { name: 'BCSYNC_JOB_LEASE_SECONDS', value: string(jobLeaseSeconds) }
  { name: 'BCSYNC_JOB_TIME_BUDGET_SECONDS', value: string(jobTimeBudgetSeconds) }
  { name: 'BCSYNC_LOG_RETENTION_DAYS', value: string(logRetentionDays) }
  { name: 'BCSYNC_RECONCILE_MINUTES', value: string(reconcileMinutes) }
  { name: 'BCSYNC_FACTS_TTL_SECONDS', value: string(factsTtlSeconds) }
  { name: 'BCSYNC_AUTO_CREATE_SALES_ORDERS', value: autoCreateSalesOrders ? 'true' : 'false' }
  { name: 'BCSYNC_HTTP_AUTH', value: httpAuth }
  { name: 'BCSYNC_READER_ROLE', value: readerRole }
  { name: 'BCSYNC_ADMIN_ROLE', value: adminRole }
]

// How the integration app registration is signed in to: by default a federated credential of the
// app registration trusts this managed identity (no secret exists at all); optionally a certificate
// that a Key Vault reference resolves, read with the same identity.
var credentialSettings = useKeyVaultCertificate ? [
  { name: 'BCSYNC_CLIENT_CREDENTIAL', value: 'certificate' }
  { name: 'BCSYNC_CLIENT_CERTIFICATE', value: '@Microsoft.KeyVault(SecretUri=${certificateSecretUri})' }
] : [
  { name: 'BCSYNC_CLIENT_CREDENTIAL', value: 'managedidentity' }
  { name: 'BCSYNC_MANAGED_IDENTITY_CLIENT_ID', value: identityClientId }
]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy of Flex Consumption depends on the region; a missed timer tick is caught up by the next run
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: the HTTP API must be reachable by its callers; function keys or Entra ID (BCSYNC_HTTP_AUTH) guard it
  // checkov:skip=CKV_AZURE_17: callers prove who they are with function keys or Entra ID tokens, not client certificates
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero by itself (numberOfWorkers does not apply); queued jobs survive a lost instance
  // checkov:skip=CKV_AZURE_213: no health-check path: the app serves timer and queue triggers and scales to zero between runs
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: concat(storageSettings, monitoringSettings, bcsyncSettings, credentialSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageAccount.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// BCSYNC_HTTP_AUTH=entra: App Service Authentication lets only callers with a token for the API's
// app registration through; bcsync then checks their app roles.
module authentication 'authentication.bicep' = if (httpAuth == 'entra') {
  name: 'authentication'
  params: {
    functionAppName: functionApp.name
    tenantId: tenantId
    apiClientId: httpApiClientId
  }
}

// Deployment goes through Entra ID (azd, Azure CLI); no publishing user names or passwords.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = functionApp.name
output url string = 'https://${functionApp.properties.defaultHostName}'
