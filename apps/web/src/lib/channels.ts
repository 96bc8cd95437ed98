/** The API's rule for channel names (apps/api/src/channels: CHANNEL_NAME). */
export const CHANNEL_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** Why a channel name would be refused, or null when the API will take it. */
export function channelNameProblem(name: string): string | null {
  if (name.length === 0) return 'Name the channel (for example prod or staging).';
  if (name.length > 63) return 'At most 63 characters.';
  if (!CHANNEL_NAME.test(name)) return 'Lower-case letters, digits, ".", "_" and "-", starting with a letter or digit.';
  return null;
}
