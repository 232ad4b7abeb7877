// bcsync on Azure: a resource group with a Flex Consumption function app, its user-assigned
// managed identity, storage, monitoring and (optionally) a Key Vault for a client certificate.
// No secret and no key is created or stored anywhere: the identity reaches storage, Application
// Insights and the Key Vault with Entra ID tokens, and signs in to the integration app registration
// through a federated credential (docs/deploy.md).
targetScope = 'subscription'

// ---------------------------------------------------------------- environment

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; resource names are derived from it.')
param environmentName string

@minLength(1)
@description('Region of every resource. It must offer the Flex Consumption plan.')
@metadata({ azd: { type: 'location' } })
param location string

@description('Name of the resource group to create; empty: rg-<environment name>.')
param resourceGroupName string = ''

@description('Object id of the person running the deployment (azd sets AZURE_PRINCIPAL_ID). With the Key Vault, they get Key Vault Certificates Officer on it so that they can import the certificate; empty: nobody.')
param principalId string = ''

// ---------------------------------------------------------------- integration app registration

@minLength(36)
@maxLength(36)
@description('BCSYNC_TENANT_ID: Microsoft Entra tenant id of the integration app registration.')
param tenantId string

@minLength(36)
@maxLength(36)
@description('BCSYNC_CLIENT_ID: application (client) id of the integration app registration.')
param clientId string

@description('BCSYNC_FEDERATED_TOKEN_AUDIENCE: audience that the federated credential of the app registration expects.')
param federatedTokenAudience string = 'api://AzureADTokenExchange'

@description('Sign in to the app registration with a certificate kept in a new Key Vault (BCSYNC_CLIENT_CREDENTIAL=certificate) instead of the managed identity\'s federated credential.')
param useKeyVaultCertificate bool = false

@description('Name of the certificate in that Key Vault.')
param clientCertificateName string = 'bcsync-integration'

// ---------------------------------------------------------------- the two services

@description('BCSYNC_DATAVERSE_URL: Dataverse environment URL, e.g. https://contoso.crm4.dynamics.com.')
param dataverseUrl string

@description('BCSYNC_BC_URL: https://api.businesscentral.dynamics.com/v2.0/<tenant>/<environment>.')
param businessCentralUrl string

@minLength(36)
@maxLength(36)
@description('BCSYNC_BC_COMPANY_ID: id of the Business Central company to synchronise.')
param businessCentralCompanyId string

@description('BCSYNC_BC_SCOPE: OAuth scope of Business Central.')
param businessCentralScope string = 'https://api.businesscentral.dynamics.com/.default'

// ---------------------------------------------------------------- behaviour (the code's defaults)

@description('BCSYNC_SCHEDULE: NCRONTAB schedule of the timer that starts scheduled runs.')
param schedule string = '0 */5 * * * *'

@description('BCSYNC_QUEUE_NAME: storage queue of sync jobs (created here).')
param queueName string = 'bcsync-jobs'

@description('BCSYNC_TABLE_PREFIX: prefix of the Table Storage tables.')
param tablePrefix string = 'bcsync'

@minValue(1)
@description('BCSYNC_PAGE_SIZE: rows read and written per page.')
param pageSize int = 20000

@minValue(1)
@description('BCSYNC_WRITE_CONCURRENCY: writes in flight at once per job and service.')
param writeConcurrency int = 4

@minValue(1)
@description('BCSYNC_HTTP_TIMEOUT: seconds before a request to a service times out.')
param httpTimeoutSeconds int = 60

@minValue(0)
@description('BCSYNC_HTTP_MAX_RETRIES: retries of a throttled or failed request.')
param httpMaxRetries int = 5

@minValue(0)
@description('BCSYNC_MAX_RETRY_WAIT: longest Retry-After (seconds) waited in place.')
param maxRetryWaitSeconds int = 60

@minValue(0)
@description('BCSYNC_WATERMARK_MARGIN_SECONDS: safety margin of watermarks.')
param watermarkMarginSeconds int = 60

@minValue(1)
@description('BCSYNC_JOB_LEASE_SECONDS: how long a running job holds its lease without progress.')
param jobLeaseSeconds int = 600

@minValue(1)
@description('BCSYNC_JOB_TIME_BUDGET_SECONDS: a job continues in a new invocation after this long.')
param jobTimeBudgetSeconds int = 480

@minValue(0)
@description('BCSYNC_LOG_RETENTION_DAYS: days the job log is kept (0 keeps it).')
param logRetentionDays int = 30

@minValue(1)
@description('BCSYNC_RECONCILE_MINUTES: how often coupled Business Central records are checked for deletion.')
param reconcileMinutes int = 360

@minValue(0)
@description('BCSYNC_FACTS_TTL_SECONDS: seconds a fact about the services set-up is used before it is read again.')
param factsTtlSeconds int = 3600

@description('BCSYNC_AUTO_CREATE_SALES_ORDERS: create every order submitted in Sales on schedule.')
param autoCreateSalesOrders bool = false

@allowed([ 'keys', 'entra' ])
@description('BCSYNC_HTTP_AUTH: keys (function and admin keys) or entra (App Service Authentication and app roles).')
param httpAuth string = 'keys'

@description('BCSYNC_READER_ROLE: app role that may read (entra).')
param readerRole string = 'bcsync.Reader'

@description('BCSYNC_ADMIN_ROLE: app role that may also change (entra).')
param adminRole string = 'bcsync.Admin'

@description('With entra: application (client) id of the app registration that declares the two app roles and that callers request tokens for; empty: the integration app registration.')
param httpApiClientId string = ''

// ---------------------------------------------------------------- sizing and cost

@allowed([ 512, 2048, 4096 ])
@description('Memory of each function app instance (MB); billing is per GB-second of it.')
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
@description('Most instances the function app scales out to.')
param maximumInstanceCount int = 40

@minValue(30)
@maxValue(730)
@description('Days Log Analytics keeps telemetry (the first 31 cost nothing extra).')
param logAnalyticsRetentionDays int = 30

@description('Daily ingestion cap of Log Analytics in GB; -1: none.')
param logAnalyticsDailyCapGb int = -1

@allowed([ 'Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_GZRS' ])
@description('Redundancy of the storage account; ZRS and GZRS need a region with availability zones.')
param storageSku string = 'Standard_LRS'

// ---------------------------------------------------------------- names

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = 'func-bcsync-${resourceToken}'
var keyVaultName = 'kv-bcsync-${take(resourceToken, 11)}'
var keyVaultUri = 'https://${keyVaultName}${environment().suffixes.keyvaultDns}/'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-bcsync-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'stbcsync${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: 'app-package'
    queueName: queueName
    skuName: storageSku
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    workspaceName: 'log-bcsync-${resourceToken}'
    applicationInsightsName: 'appi-bcsync-${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logAnalyticsRetentionDays
    dailyCapGb: logAnalyticsDailyCapGb
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    principalId: identity.outputs.principalId
  }
}

module keyVault 'app/keyvault.bicep' = if (useKeyVaultCertificate) {
  name: 'keyvault'
  scope: rg
  params: {
    name: keyVaultName
    location: location
    tags: tags
    identityPrincipalId: identity.outputs.principalId
    certificateOfficerPrincipalId: principalId
  }
}

module api 'app/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  dependsOn: [ rbac ]
  params: {
    name: functionAppName
    planName: 'plan-bcsync-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    tenantId: tenantId
    clientId: clientId
    federatedTokenAudience: federatedTokenAudience
    useKeyVaultCertificate: useKeyVaultCertificate
    certificateSecretUri: '${keyVaultUri}secrets/${clientCertificateName}'
    dataverseUrl: dataverseUrl
    businessCentralUrl: businessCentralUrl
    businessCentralCompanyId: businessCentralCompanyId
    businessCentralScope: businessCentralScope
    schedule: schedule
    queueName: queueName
    tablePrefix: tablePrefix
    pageSize: pageSize
    writeConcurrency: writeConcurrency
    httpTimeoutSeconds: httpTimeoutSeconds
    httpMaxRetries: httpMaxRetries
    maxRetryWaitSeconds: maxRetryWaitSeconds
    watermarkMarginSeconds: watermarkMarginSeconds
    jobLeaseSeconds: jobLeaseSeconds
    jobTimeBudgetSeconds: jobTimeBudgetSeconds
    logRetentionDays: logRetentionDays
    reconcileMinutes: reconcileMinutes
    factsTtlSeconds: factsTtlSeconds
    autoCreateSalesOrders: autoCreateSalesOrders
    httpAuth: httpAuth
    readerRole: readerRole
    adminRole: adminRole
    httpApiClientId: !empty(httpApiClientId) ? httpApiClientId : clientId
  }
}

// ---------------------------------------------------------------- outputs (azd stores them in the environment)

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output AZURE_FUNCTION_APP_URL string = api.outputs.url
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.url
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_MANAGED_IDENTITY_NAME string = identity.outputs.name
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output AZURE_FEDERATED_CREDENTIAL_ISSUER string = '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
output AZURE_KEY_VAULT_NAME string = useKeyVaultCertificate ? keyVaultName : ''
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.connectionString
