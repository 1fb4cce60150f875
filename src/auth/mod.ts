/**
 * Authentication and authorization for the broker: the {@link Authenticator} asked on CONNECT, the
 * {@link Authorizer} asked on PUBLISH and SUBSCRIBE, and the `mqtt-proxy passwd` command that edits
 * password files. Pure modules: files in, decisions out, no sockets.
 *
 * @module
 */
export type {
  Authenticator,
  Authorizer,
  AuthResult,
  AuthStep,
  ClientIdentity,
  Credentials,
  EnhancedAuthExchange,
  EnhancedAuthMethod,
} from "./port.ts";
export {
  createScramMethod,
  parseScramFile,
  SCRAM_SHA_256,
  scramCredentialLine,
  scramMethod,
} from "./scram.ts";
export { AuthFileError, readAuthFile } from "./auth_file.ts";
export {
  type AuthenticatorOptions,
  type AuthStats,
  createAuthenticator,
  DEFAULT_FAILURE_DELAY,
  type ReloadableAuthenticator,
} from "./authenticator.ts";
export { type AuthorizerOptions, createAuthorizer, type ReloadableAuthorizer } from "./authorizer.ts";
export { type AclPolicy, ClientAcl, parseAclFile } from "./acl.ts";
export { type Clock, type FailureDelay, LoginThrottle, systemClock } from "./login_throttle.ts";
export {
  clientAddressKey,
  DEFAULT_REFUSAL_FLOOR_MS,
  LOGIN_METHODS,
  LoginGuard,
  type LoginMethod,
  type MethodStats,
} from "./login_guard.ts";
export {
  addOrUpdateUser,
  DEFAULT_PBKDF2_ITERATIONS,
  hashPassword,
  parsePasswordFile,
  type PasswordTable,
  removeUser,
  verifyPassword,
} from "./password_file.ts";
export { type CredentialFormat, credentialUsage, type PasswdIo, runPasswdCommand } from "./passwd_command.ts";
export { type AccessKeyTable, parseAccessKeysFile, signClientId, verifySignature } from "./signature.ts";
export { bearerTokenOf, MIN_TOKEN_LENGTH, readBearerTokenFile, tokenMatches } from "./bearer_token.ts";
