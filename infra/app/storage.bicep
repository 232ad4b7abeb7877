// Storage of the Functions host and of bcsync (couplings, runs and errors in tables, jobs in a
// queue), plus the blob container that Flex Consumption deploys the app package from.
// Only Entra ID tokens get in: shared keys, SAS and anonymous blob access are off.

@description('Name of the storage account (3-24 lower-case letters and digits).')
param name string
param location string
param tags object = {}

@description('Blob container holding the deployment package.')
param deploymentContainerName string

@description('Queue of sync jobs (BCSYNC_QUEUE_NAME).')
param queueName string

@allowed([ 'Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_GZRS' ])
@description('Redundancy of the account. ZRS and GZRS need a region with availability zones.')
param skuName string = 'Standard_LRS'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: the Flex Consumption app has no virtual network here, so it reaches storage over the public endpoint; only Entra ID tokens get in (no keys, no SAS)
  // checkov:skip=CKV_AZURE_59: public network access stays on because the app has no virtual network; shared keys are disabled, so only Entra ID tokens get in
  // checkov:skip=CKV_AZURE_206: LRS by default so that every Flex Consumption region works; the skuName parameter offers ZRS, GRS and GZRS
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    isLocalUserEnabled: false
    isSftpEnabled: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource jobQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queues
  name: queueName
}

output name string = account.name
output deploymentContainerName string = deploymentContainer.name
