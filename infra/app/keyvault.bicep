// Optional: a Key Vault for customers who sign in to the integration app registration with a
// certificate. Access is by Azure RBAC only; the function app's identity may read secrets (a
// certificate's secret is its PFX, which the app setting's Key Vault reference resolves to).

param name string
param location string
param tags object = {}

@description('Principal (object) id of the function app\'s managed identity.')
param identityPrincipalId string

@description('Object id of a user who may import and renew the certificate; empty: nobody.')
param certificateOfficerPrincipalId string = ''

var roles = {
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultCertificatesOfficer: 'a4417e6f-fecd-4de8-b567-7b0420556985'
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Key Vault references of a function app without a virtual network use the public endpoint; access is Azure RBAC only
  // checkov:skip=CKV_AZURE_189: the function app has no private path to the vault, so its public endpoint stays on; Azure RBAC decides who reads the certificate
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identityPrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource certificatesOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(certificateOfficerPrincipalId)) {
  name: guid(vault.id, certificateOfficerPrincipalId, roles.keyVaultCertificatesOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultCertificatesOfficer)
    principalId: certificateOfficerPrincipalId
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
